% Lanterns on the Water: SATB a cappella. Original music and words, written for Maestral's demo
% library (same licence as the project). Engrave with: lilypond lanterns-on-the-water.ly
\version "2.24.0"

#(set-global-staff-size 19)
\pointAndClickOff

\header {
  title = "Lanterns on the Water"
  subtitle = "for mixed choir (SATB) a cappella"
  composer = "Maestral demo score"
  poet = "Words: Maestral demo score"
  tagline = ##f
}

\paper {
  #(set-paper-size "a4")
  systems-per-page = 2
  ragged-last-bottom = ##t
}

global = { \key f \major \time 4/4 \tempo "Gently flowing" 4 = 76 }

% Four bars to a system, two systems to a page: 84 bars make 11 pages.
breaks = {
  \repeat unfold 20 { s1*4 \break }
  s1*4 \bar "|."
}

% One verse, eight two-bar lines, each line "4 quarters | 2 quarters + half" (7 syllables).
verseS = {
  a'4 a' c'' a' | g' f' g'2 | f'4 a' c'' d'' | c'' a' c''2 |
  d''4 c'' bes' a' | g' a' bes'2 | a'4 g' f' d' | e' e' f'2 |
  c''4 c'' d'' c'' | bes' a' g'2 | bes'4 bes' c'' bes' | a' g' a'2 |
  f'4 a' c'' f'' | e'' d'' c''2 | d''4 bes' a' g' | a' g' f'2 |
}
verseA = {
  f'4 f' f' f' | e' d' e'2 | c'4 f' e' f' | g' f' g'2 |
  f'4 f' g' f' | e' f' f'2 | f'4 e' d' d' | c' bes a2 |
  f'4 e' f' f' | g' f' e'2 | g'4 g' g' g' | f' e' f'2 |
  d'4 f' f' a' | g' g' g'2 | f'4 g' f' e' | f' e' c'2 |
}
verseT = {
  c'4 d' c' c' | c' a c'2 | a4 c' a bes | e' c' e'2 |
  bes4 c' d' d' | c' c' d'2 | c'4 c' a bes | g g c'2 |
  a4 a bes a | d' d' c'2 | d'4 d' e' e' | c' c' d'2 |
  a4 c' a d' | c' d' e'2 | bes4 d' c' c' | c' bes a2 |
}
verseB = {
  f4 d a f | e d c2 | f,4 a, a, bes, | c f, c2 |
  bes,4 a, g, d | c f, bes,2 | f4 e d bes, | c c f,2 |
  f4 a, bes, f | g d c2 | bes,4 g, c c | f e d2 |
  d4 a, f, d | c bes, c2 | bes,4 g, c c | f c f,2 |
}

% The bridge, in D minor, ending on the dominant of F.
bridgeS = {
  d''4 d'' cis'' d'' | e'' d'' a'2 | f'4 g' a' bes' | a' g' a'2 |
  a'4 c'' f'' e'' | d'' c'' d''2 | c''4 bes' a' g' | a' f' e'2 |
}
bridgeA = {
  f'4 f' e' f' | g' f' f'2 | d'4 d' d' d' | f' e' e'2 |
  f'4 e' a' g' | f' f' g'2 | g'4 g' f' e' | f' d' c'2 |
}
bridgeT = {
  a4 a a a | c' bes c'2 | a4 bes a g | d' cis' cis'2 |
  c'4 a d' c' | bes a bes2 | e'4 d' c' c' | c' a g2 |
}
bridgeB = {
  d4 d a, d | c bes, a,2 | d4 g, f, g, | d e a,2 |
  f4 a, d c | bes, f, g,2 | c4 g, f e | f d c2 |
}

codaS = { a'4 a' c'' a' | g' e' f'2 | f'1 | f'1\fermata | }
codaA = { f'4 f' f' f' | e' bes a2 | d'1 | c'1\fermata | }
codaT = { c'4 d' c' c' | c' g c'2 | bes1 | a1\fermata | }
codaB = { f4 d a f | c c f,2 | bes,1 | f,1\fermata | }

soprano = {
  \global
  \mark "Verse 1" \verseS \mark "Verse 2" \verseS \mark "Bridge" \bridgeS
  \mark "Verse 3" \verseS \mark "Bridge" \bridgeS \mark "Verse 4" \verseS \mark "Coda" \codaS
}
alto = { \global \verseA \verseA \bridgeA \verseA \bridgeA \verseA \codaA }
tenor = { \global \verseT \verseT \bridgeT \verseT \bridgeT \verseT \codaT }
bass = { \global \verseB \verseB \bridgeB \verseB \bridgeB \verseB \codaB }

words = \lyricmode {
  % Verse 1
  Light the lan -- terns, one by one,
  set them on the e -- ven tide;
  when the work of day is done,
  let them drift from side to side.
  Ev -- ery light a name we keep,
  ev -- ery flame a word un -- said;
  car -- ry them be -- yond the deep,
  home to where the sky is red.
  % Verse 2
  Riv -- er, take what we have made,
  pa -- per boats and can -- dle -- light;
  through the wil -- low and the shade,
  car -- ry them in -- to the night.
  Slow -- ly, slow -- ly, let them go,
  soft the cur -- rent, calm the air;
  all the things we used to know
  float up -- on the wa -- ter there.
  % Bridge
  Dark the wa -- ter, deep and still,
  cold the wind up -- on the hill;
  yet the lan -- terns burn and turn,
  and the hearts that watch them learn.
  % Verse 3
  Chil -- dren run a -- long the shore,
  count -- ing lights up -- on the bay;
  one more lan -- tern, then one more,
  till the dark -- ness turns to day.
  Hear the bells a -- cross the sound,
  hear the wa -- ter's qui -- et song;
  what was lost is some -- how found,
  what was short is some -- how long.
  % Bridge
  Far a -- way the lights grow small,
  far be -- yond the har -- bour wall;
  still we see them, still we know
  where the lan -- terns come and go.
  % Verse 4
  When the last of them has passed
  and the riv -- er holds them all,
  we will sing them home at last,
  we will hear the dis -- tant call.
  Light the lan -- terns, one by one,
  set them on the e -- ven tide;
  when the work of day is done,
  we shall meet them side by side.
  % Coda
  Light the lan -- terns, one by one. A -- men.
}

\score {
  \new ChoirStaff <<
    \new Staff \with { instrumentName = "Soprano" shortInstrumentName = "S" } <<
      \new Voice = "s" { \dynamicUp \soprano }
      \new Devnull \breaks
    >>
    \new Lyrics \lyricsto "s" \words
    \new Staff \with { instrumentName = "Alto" shortInstrumentName = "A" }
      \new Voice = "a" \alto
    \new Lyrics \lyricsto "a" \words
    \new Staff \with { instrumentName = "Tenor" shortInstrumentName = "T" } {
      \clef "treble_8" \new Voice = "t" \tenor
    }
    \new Lyrics \lyricsto "t" \words
    \new Staff \with { instrumentName = "Bass" shortInstrumentName = "B" } {
      \clef bass \new Voice = "b" \bass
    }
    \new Lyrics \lyricsto "b" \words
  >>
  \layout {
    \context { \Score \override NonMusicalPaperColumn.line-break-permission = ##f }
  }
}
