#!/usr/bin/env bash
# The CPU video pipeline (issue 16): `espcn-lab bench xS --pipeline` at 1080p output, RGB and YUV paths side by
# side with the network alone, for x2/x3/x4, no encoding (rawvideo) and x264 ultrafast, on the synthetic
# lossless FFV1 LR clip and on an x264 (crf 18) LR clip, the kind of input people watch. One JSON per cell
# and the load average around each run in $out/loadavg.txt. Clips of $FRAMES frames (default 96: every run opens
# and closes a video, which 24 frames over-weighted). Usage: [FRAMES=N] bash benchmarks/video_yuv.sh [OUT]
set -euo pipefail
out=${1:-benchmarks/results/video_yuv_quiet}
frames=${FRAMES:-96}
mkdir -p "$out"
: > "$out/loadavg.txt"
for s in 2 3 4; do
  h=$((1080 / s)) w=$((1920 / s))
  clip="$out/.lr_x$s.mkv"
  python - "$clip" "$h" "$w" "$frames" <<'PY'
import sys
import av
import numpy as np
path, h, w, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
with av.open(path, "w") as out:
    st = out.add_stream("libx264", rate=25)
    st.width, st.height, st.pix_fmt, st.options = w, h, "yuv420p", {"crf": "18"}
    for t in range(n):
        rgb = np.stack([np.sin((xx + 4 * t) / 23), np.cos((yy - 3 * t) / 17), np.sin((xx + yy + 5 * t) / 31)], -1)
        frame = av.VideoFrame.from_ndarray(((rgb * 0.5 + 0.5) * 255).astype(np.uint8), format="rgb24")
        for p in st.encode(frame):
            out.mux(p)
    for p in st.encode():
        out.mux(p)
PY
  for input in ffv1 x264; do
    for codec in rawvideo ultrafast; do
      cell="x${s}_1080p_${input}_in_${codec}"
      args=(--codec rawvideo)
      [ "$codec" = ultrafast ] && args=(--preset ultrafast)
      [ "$input" = x264 ] && args+=(--video "$clip")
      echo "$cell start $(date +%T) $(cat /proc/loadavg)" >> "$out/loadavg.txt"
      espcn-lab bench "x$s" --device cpu --resolution 1080p --no-baselines --pipeline --frames "$frames" "${args[@]}" \
        --json "$out/$cell.json" > "$out/$cell.txt" 2>&1
      echo "$cell end   $(date +%T) $(cat /proc/loadavg)" >> "$out/loadavg.txt"
    done
  done
  rm -f "$clip"
done
