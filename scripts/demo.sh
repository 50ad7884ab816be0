#!/usr/bin/env bash
# `make demo`: the main job on the embedded defaults: the shipped model, a local SQLite evidence
# store (in demo-output/home) and the bundled sample images. Safe to run again (starts fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/${VENV:-.venv}/bin:$PATH"
OUT=demo-output
rm -rf "$OUT"
mkdir -p "$OUT"
export WELDINSPECT_HOME="$PWD/$OUT/home"

echo "== 1. a signing key for this station (evidence records are signed with it)"
weldinspect keys init --station demo-station

echo "== 2. score the bundled samples with the shipped model, writing signed evidence"
set +e
weldinspect score data/samples/annotations.jsonl --context data/samples/context.csv \
  --out "$OUT/results.jsonl" --ledger default --station demo-station
rc=$?
set -e
[ $rc -eq 0 ] || [ $rc -eq 3 ] || exit $rc

echo "== 2b. why samples went to review (a person confirms these before they count)"
python - "$OUT/results.jsonl" <<'PY'
import json, sys
from collections import defaultdict
meaning = {
    "not_seam_closeup": "not a seam close-up (wide shot, several parts, small seam): not graded",
    "unfamiliar_appearance": "looks unlike the photos the model learned: graded only provisionally, or not at all",
    "out_of_distribution": "the model's own embedding finds it unfamiliar; these samples are procedural renders, "
    "not photos, and the model learned three real welds, so many are flagged",
    "grade_findings_disagree": "the pore count and the grading head disagree",
    "abstain:porosity": "porosity grade not confident enough",
    "abstain:spatter": "spatter grade not confident enough",
}
by = defaultdict(list)
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
for rec in records:
    for reason in rec["review_reasons"]:
        by[reason].append(rec["image"].rsplit("/", 1)[-1])
print(f"{sum(r['needs_review'] for r in records)} of {len(records)} samples need review")
for reason, names in sorted(by.items(), key=lambda kv: -len(kv[1])):
    text = meaning.get(reason, "quality gate: " + reason.split(":", 1)[-1] if reason.startswith("quality:") else reason)
    print(f"  {len(names):2d} x {reason}: {text}\n       {' '.join(names)}")
PY

echo "== 3. one image in detail, with its overlay"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
ctx = {"process": "laser", "material": "stainless", "thickness_mm": 2.0, "mm_per_px": 0.0625,
       "machine_serial": "HL1500-0002", "params": {"laser_power_w": 1250, "speed_mm_s": 30,
       "wobble_width_mm": 1.5, "gas_type": "argon", "gas_flow_l_min": 14}}
(out / "context.json").write_text(json.dumps(ctx, indent=2))
PY
weldinspect inspect data/samples/images/synth0005.jpg --context "$OUT/context.json" \
  --overlay "$OUT/synth0005_overlay.png" > "$OUT/synth0005.json"
python -c "import json,sys; r=json.load(open(sys.argv[1])); print('porosity', r['porosity'], '\nspatter', r['spatter'], '\nlevel', (r['standards'] or {}).get('level_reached'), '\nreview', r['review_reasons'])" "$OUT/synth0005.json"

echo "== 4. verify the evidence ledger and export a claim bundle for one machine"
weldinspect evidence verify
weldinspect evidence export --serial HL1500-0002 --out "$OUT/claim_HL1500-0002.zip"
weldinspect evidence verify-bundle "$OUT/claim_HL1500-0002.zip"

echo
echo "Done. Results: $OUT/results.jsonl  overlay: $OUT/synth0005_overlay.png  claim: $OUT/claim_HL1500-0002.zip"
