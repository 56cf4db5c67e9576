#!/bin/bash
# Every executable given must list libstdc++ before any LibTorch library (libtorch*, libc10*)
# among its needed libraries, so that std:: symbols resolve to libstdc++'s own definitions
# even where a LibTorch build exports copies of them (CMakeLists.txt says why).
set -u
status=0
for exe in "$@"; do
  needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  stdcxx=$(grep -n '^libstdc++\.so' <<<"$needed" | head -1 | cut -d: -f1)
  torch=$(grep -nE '^(libtorch|libc10)' <<<"$needed" | head -1 | cut -d: -f1)
  if [ -z "$stdcxx" ] || [ -z "$torch" ]; then
    echo "link_order: $exe: expected both libstdc++ and LibTorch among the needed libraries:"
    echo "$needed"
    status=1
  elif [ "$stdcxx" -gt "$torch" ]; then
    echo "link_order: $exe: libstdc++ comes after LibTorch in the needed libraries:"
    echo "$needed"
    status=1
  else
    echo "link_order: $exe: ok (libstdc++ at $stdcxx, LibTorch from $torch)"
  fi
done
exit $status
