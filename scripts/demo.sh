#!/usr/bin/env bash
# The demo: explains scikit-image's bundled photos with the ImageNet MobileNet
# (alpha 0.25, 128 px) as a local Spark job and prints the run summary, one
# audit query and where the results are, the HTML audit report among them.
#   scripts/demo.sh                      # MobileNet through Keras' cache
#   scripts/demo.sh --num-samples 300    # any `lime-spark explain` option
#   scripts/demo.sh --model vgg16        # the seed blog's VGG16, where its weights can be had
source "$(dirname "$0")/_setup.sh"
check_java
setup_venv demo             # no test tools, no S3A jars: the demo reads and writes local files
cd "$REPO"
OUT="${DEMO_OUT:-$REPO/out}"

# Keras' cache: Keras downloads the weights and class index itself where it has
# internet; here it is seeded from ../shared/models when that folder exists.
export KERAS_HOME="${KERAS_HOME:-$HOME/.keras}"
SHARED_MODELS="${LIME_SPARK_SHARED:-$REPO/../shared}/models"
if [ -d "$SHARED_MODELS" ]; then
    mkdir -p "$KERAS_HOME/models"
    for f in "$SHARED_MODELS"/*; do
        [ -e "$KERAS_HOME/models/$(basename "$f")" ] || cp "$f" "$KERAS_HOME/models/"
    done
fi

"$VENV/bin/python" scripts/make_demo_inputs.py "$OUT/demo-input" >/dev/null

MODEL_ARGS=()
case " $* " in
    *" --model "*) ;;
    *) MODEL_ARGS=(--model mobilenet --model-args "{alpha: 0.25, input_shape: [128, 128, 3]}") ;;
esac

echo "demo: explaining scikit-image's photos on local Spark (a minute or two; Spark's log: $OUT/demo.err)" >&2
"$VENV/bin/lime-spark" explain \
    --input "$OUT/demo-input/images.parquet" --output "$OUT" --run-id demo \
    --labels imagenet --log-level WARNING "${MODEL_ARGS[@]}" "$@" \
    --conf spark.ui.showConsoleProgress=false > "$OUT/demo.log" 2> "$OUT/demo.err" || {
        echo "demo: the job failed; its output:" >&2; tail -n 40 "$OUT/demo.err" >&2; exit 1; }
sed -n '/^run demo:/,$p' "$OUT/demo.log"

echo
echo "Images whose top label is not the expected one, and the lowest explanation fits (DuckDB):"
"$VENV/bin/python" - "$OUT" <<'PY'
import sys, duckdb
out = sys.argv[1]
print(duckdb.sql(f"""
    select i.image_id, i.expected_label, i.top_label_name, round(i.top_prob, 3) as top_prob,
           round(e.model_r2, 3) as explanation_fit, round(e.insertion_auc, 3) as insertion_auc
    from read_parquet('{out}/images/*/*.parquet', hive_partitioning=true) i
    join read_parquet('{out}/explanations/*/*.parquet', hive_partitioning=true) e
      on e.image_id = i.image_id and e.run_id = i.run_id and e.label_rank = 1
    where i.run_id = 'demo'
    order by (i.expected_label is not null and i.expected_label <> i.top_label_name) desc,
             e.model_r2
"""))
PY
REPORT="$OUT/report/run_id=demo/index.html"
if [ ! -f "$REPORT" ]; then     # the job writes it unless told --report false
    "$VENV/bin/lime-spark" report --output "$OUT" --run-id demo >/dev/null 2>> "$OUT/demo.err" || {
        echo "demo: the report could not be written; see $OUT/demo.err" >&2; exit 1; }
fi
echo "summary: $OUT/runs/run_id=demo/summary.json"
echo "overlays: $OUT/overlays/run_id=demo/"
echo "report: $REPORT"
