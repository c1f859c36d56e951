#!/usr/bin/env bash
# Copy the run records (results.jsonl files only: no checkpoint, prediction or image) of a training output dir
# into the repository, keeping the variant layout:  scripts/collect_records.sh <output_dir> <dest dir>
#   scripts/collect_records.sh /data/runs/utkface/architectures reports/results/utkface/architectures
set -euo pipefail
if [[ $# -ne 2 || ! -d "$1" ]]; then
  echo "usage: scripts/collect_records.sh <training output_dir> <destination dir>" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
mkdir -p "$2"
dest=$(cd "$2" && pwd)
count=0
while IFS= read -r -d '' file; do
  rel=${file#"$src"/}
  mkdir -p "$dest/$(dirname "$rel")"
  cp "$file" "$dest/$rel.tmp" && mv "$dest/$rel.tmp" "$dest/$rel"   # atomic: a reader never sees half a file
  count=$((count + 1))
done < <(find "$src" -name results.jsonl -type f -print0)
echo "copied $count results.jsonl file(s) from $src to $dest"
