#!/usr/bin/env bash
# The discriminator-filtered augmentation experiment end to end (docs/augmentation.md), from the project root:
# speaker, discriminator and alignment pretraining on the unseen protocol's train split, 20,000 sampled paths,
# their speaker instructions, the filtered files, then follower runs that differ only in their training files
# (and --init-from, and the seed). Every stage skips what an earlier run of this script finished.
#
#   bash scripts/augmentation_table.sh [short|long|all]     # default all
#
# short: the 300k-env-step table (10 runs, ~3.5 minutes each alone on 2 cores); long: none / top20 / random20
# at 1.2M env steps, three at a time. Needs the split of `valan data split r2r` in runs/splits/r2r (see
# docs/unseen.md) and the shared R2R data in ../shared/data/r2r. Synthetic features: no visual information.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && export PATH="$PWD/.venv/bin:$PATH"
SP=runs/splits/r2r R2R=../shared/data/r2r A=runs/aug
DATA=(--set data.root=. --set "data.train=[$SP/train.json]" --set data.vocab=$R2R/train_vocab.txt
      --set data.connectivity=$R2R/connectivity)
SPEAKER=$A/speaker/checkpoints/LATEST.pt DISC=$A/disc/checkpoints/LATEST.pt ALIGN=$A/align/checkpoints/LATEST.pt
mkdir -p $A

stage() {  # name command...: run the command unless runs/aug/<name>.done exists
  local name=$1; shift
  [ -f "$A/$name.done" ] && return
  echo "$(date +%T) $name"
  "$@" > "$A/$name.log" 2>&1
  touch "$A/$name.done"
}

models() {
  stage speaker valan train-speaker --out $A/speaker --overwrite "${DATA[@]}" --set data.eval.dev_unseen=$SP/dev_unseen.json \
    --set data.eval.val_seen=$SP/val_seen.json --set run.total_minutes=14 --set run.num_threads=1 &
  stage disc valan train-discriminator --config configs/discriminator_r2r.yaml --out $A/disc --overwrite "${DATA[@]}" \
    --set "data.eval={dev_unseen: $SP/dev_unseen.json}" --set run.total_cpu_minutes=5
  stage align valan pretrain-alignment --tasks cma,nvs --out $A/align --overwrite "${DATA[@]}" \
    --set "data.eval={dev_unseen: $SP/dev_unseen.json}" --set run.total_cpu_minutes=5
  wait
}

augmented_data() {
  stage paths valan augment paths --connectivity $R2R/connectivity --scans-of $SP/train.json --count 20000 --seed 0 \
    --output $A/paths.json
  stage speak valan speak --checkpoint $SPEAKER --data $A/paths.json --output $A/all.json
  stage top20 valan filter --checkpoint $DISC --data $A/all.json --keep-top 0.2 --output $A/top20.json
  stage top50 valan filter --checkpoint $DISC --data $A/all.json --keep-top 0.5 --output $A/top50.json
  stage random20 valan filter --checkpoint $DISC --data $A/all.json --keep-random 0.2 --seed 0 --output $A/random20.json
  stage speak_dev valan speak --checkpoint $SPEAKER --data $SP/dev_unseen.json --output $A/dev_unseen_speaker.json
  stage scores valan score --checkpoint $DISC --data $SP/dev_unseen.json $A/dev_unseen_speaker.json \
    --output $A/dev_unseen_scores.jsonl --histogram $A/dev_unseen_scores.png
}

follower() {  # folder mix env-steps seed [valan train arguments...]
  local out=$1 mix=$2 steps=$3 seed=$4; shift 4
  local train="[$SP/train.json]"
  [ "$mix" != none ] && train="[$SP/train.json, $A/$mix.json]"
  [ -f "$out/done" ] && return
  echo "$(date +%T) $out"
  valan train --config configs/r2r.yaml --out "$out" --overwrite --no-progress --set "data.train=$train" \
    --set run.seed=$seed --set run.total_env_steps=$steps --set run.total_minutes=0 \
    --set run.eval_every_env_steps=$((steps / 4 < 150000 ? 150000 : steps / 4)) \
    --set run.checkpoint_every_env_steps=$((steps / 4 < 150000 ? 150000 : steps / 4)) "$@" > "$out.log" 2>&1
  touch "$out/done"
}

short_table() {
  mkdir -p $A/follow
  for cell in none:0 top20:0 random20:0 all:0 top50:0 none:1 top20:1 random20:1; do
    follower $A/follow/${cell%:*}-scratch-s${cell#*:} ${cell%:*} 300000 ${cell#*:}
  done
  for mix in none top20; do
    follower $A/follow/$mix-align-s0 $mix 300000 0 --init-from $ALIGN
  done
}

long_table() {
  mkdir -p $A/long
  for mix in none top20 random20; do
    follower $A/long/$mix $mix 1200000 0 &
  done
  wait
}

models
augmented_data
case "${1:-all}" in
  short) short_table ;;
  long) long_table ;;
  all) short_table; long_table ;;
  *) echo "usage: $0 [short|long|all]" >&2; exit 2 ;;
esac
for table in follow long; do
  [ -d $A/$table ] && python scripts/compare_runs.py $A/$table/*/ --splits dev_unseen val_seen
done
