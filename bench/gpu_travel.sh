#!/usr/bin/env bash
# What travels to the GPU machine (issue 13) must stay under 64 MiB: tracked files, untracked files that git
# does not ignore, and carried paths. The shipped weights (checkpoints/*.safetensors, ~68 MB since stop 20) and
# the cifar10-mini copy (18 MB) do not fit together, and the GPU session trains the zoo from scratch, so it
# needs the data but not the old weights.
#
#   bash bench/gpu_travel.sh prepare   # copy cifar10-mini into data/ (ignored; carry it: carry=["data/cifar10-mini"]),
#                                      # take the weights out of the index and ignore them locally: they stay on disk
#   bash bench/gpu_travel.sh size      # bytes that would travel (tracked + untracked-not-ignored + data/cifar10-mini)
#   bash bench/gpu_travel.sh restore   # put the weights back in the index, drop the local ignore rule
#
# Between prepare and restore, `git status` shows the weights as deleted from the index: commit nothing then.
set -euo pipefail
cd "$(dirname "$0")/.."
MARK="# vitviz gpu_travel: weights stay home"
EXCLUDE=.git/info/exclude
LIMIT=$((64 * 1024 * 1024))

size() {
  local files carried
  files=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 -r du -cb 2>/dev/null \
           | awk '$2 == "total" {s += $1} END {print s + 0}')
  carried=$(du -sb data/cifar10-mini 2>/dev/null | cut -f1 || true)
  echo $((files + ${carried:-0}))
}

case "${1:-}" in
  prepare)
    if [ ! -d data/cifar10-mini ]; then
      src=${VITVIZ_CIFAR10_MINI:-../shared/data/cifar10-mini}
      [ -d "$src" ] || { echo "no cifar10-mini at $src (set VITVIZ_CIFAR10_MINI)" >&2; exit 1; }
      mkdir -p data && cp -r "$src" data/
    fi
    if ! grep -qF "$MARK" "$EXCLUDE" 2>/dev/null; then
      printf '%s\n/checkpoints/*.safetensors\n' "$MARK" >> "$EXCLUDE"
    fi
    git ls-files -z 'checkpoints/*.safetensors' | xargs -0 -r git rm -q --cached --
    total=$(size)
    echo "would travel: $total bytes (limit $LIMIT)"
    [ "$total" -lt "$LIMIT" ] || { echo "still over the limit" >&2; exit 1; }
    ;;
  restore)
    git reset -q -- 'checkpoints/*.safetensors' 2>/dev/null || git reset -q -- checkpoints
    if [ -f "$EXCLUDE" ]; then
      awk -v mark="$MARK" '$0 == mark {skip = 1; next} skip && $0 == "/checkpoints/*.safetensors" {skip = 0; next}
                           {skip = 0; print}' "$EXCLUDE" > "$EXCLUDE.tmp" && mv "$EXCLUDE.tmp" "$EXCLUDE"
    fi
    git status --short -- checkpoints
    ;;
  size)
    echo "would travel: $(size) bytes (limit $LIMIT)"
    ;;
  *)
    echo "usage: bash bench/gpu_travel.sh prepare|size|restore" >&2
    exit 2
    ;;
esac
