#!/usr/bin/env bash
# Makes wake.mp4 and wake.webm: two seconds of 16×16 black with a silent audio track, titled
# "Maestral" (a phone may show the title while it plays). The browser Follower loops one, muted,
# while joined, where the browser has no Wake Lock. Needs ffmpeg; the files are committed.
set -euo pipefail
cd "$(dirname "$0")"
common=(-y -hide_banner -loglevel error -f lavfi -i color=c=black:s=16x16:r=1:d=2)
ffmpeg "${common[@]}" -f lavfi -i anullsrc=r=8000:cl=mono -t 2 -shortest \
    -c:v libx264 -profile:v baseline -pix_fmt yuv420p -c:a aac -b:a 8k \
    -movflags +faststart -metadata title=Maestral -map_metadata -1 -fflags +bitexact wake.mp4
ffmpeg "${common[@]}" -f lavfi -i anullsrc=r=48000:cl=mono -t 2 -shortest \
    -c:v libvpx -b:v 8k -c:a libopus -b:a 6k -metadata title=Maestral -fflags +bitexact wake.webm
ls -l wake.mp4 wake.webm
