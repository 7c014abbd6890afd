% Harbour Lights: a jig in D, as a lead sheet (melody and chord symbols) on A5 landscape.
% Original music, written for Maestral's demo library (same licence as the project).
% Engrave with: lilypond harbour-lights-jig.ly
\version "2.24.0"

#(set-global-staff-size 22)
\pointAndClickOff

\header {
  title = "Harbour Lights"
  subtitle = "jig (lead sheet)"
  composer = "Maestral demo score"
  tagline = ##f
}

\paper {
  #(set-paper-size "a5landscape")
  systems-per-page = 4
  ragged-last-bottom = ##t
}

% Four bars to a system, four systems to a page: 32 bars make 2 pages.
breaks = {
  \repeat unfold 7 { s2.*4 \break }
  s2.*4 \bar "|."
}

partA = {
  d'8 fis' a' d''4 a'8 | b' a' fis' a'4 fis'8 | g' fis' e' fis' g' a' | b' a' g' fis' e' d' |
  d' fis' a' d''4 e''8 | fis'' e'' d'' b'4 a'8 | g' b' a' g' fis' e' |
}
partB = {
  a'8 d'' e'' fis''4 e''8 | fis'' g'' fis'' e''4 d''8 | e'' d'' b' a'4 b'8 | a' fis' e' d'4 e'8 |
  fis' a' d'' fis''4 e''8 | d'' e'' fis'' g''4 fis''8 | e'' cis'' a' b' cis'' e'' |
}

melody = {
  \key d \major \time 6/8 \tempo "Lively" 4. = 112
  \mark "A" \partA d'4. d'4 a'8 | \partA d'4. r4. |
  \mark "B" \partB d''4. d''4 a'8 | \partB d''4. d'4. |
}

changesA = \chordmode { d2. | b2.:m | e2.:m | g4. a4. | d2. | b2.:m | g4. a4.:7 | d2. | }
changesB = \chordmode { d2. | d2. | g4. a4. | d4. a4. | d2. | g2. | a2.:7 | d2. | }

\score {
  <<
    \new ChordNames { \changesA \changesA \changesB \changesB }
    \new Staff << \new Voice \melody \new Devnull \breaks >>
  >>
  \layout {
    \context { \Score \override NonMusicalPaperColumn.line-break-permission = ##f }
  }
}
