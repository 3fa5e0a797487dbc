#!/bin/sh
# Regenerate the committed example report, reports/example/ (docs/reports.md):
#
#     sh reports/regenerate.sh                  # every part below
#     sh reports/regenerate.sh main triton      # only these parts
#
# Parts: main (torch and numpy in float32 and float16, with --speed: reports/example/), optax,
# triton, torch-compile, cut-cross-entropy and torch-chunked (linear_cross_entropy's two torch
# paths side by side, time and memory)
# (reports/example/<part>/; each needs its extra installed: jax and optax, triton, a C++
# compiler for inductor, pip install cut-cross-entropy). Each part is one pytest command, run from the repository root; a part
# whose candidate fails checks (optax, torch-compile) exits 1, which is its report, not an error.
# The results/ and repro/ folders are dropped (git ignores them); the reports stay slim by
# themselves (64-colour plots, fewer error samples where every case passed).
set -eu
cd "$(dirname "$0")/.."
OUT=reports/example

report() {  # report DIR ARGS...: one pytest run into DIR, then drop what is not committed
    dir=$1
    shift
    rm -rf "$dir/plots" "$dir/results" "$dir/repro" "$dir/summary.json" "$dir/accuracy.md" \
        "$dir/speed.md" "$dir/index.html"
    status=0
    pytest conformance "$@" --report-dir="$dir" -q -p no:cacheprovider || status=$?
    rm -rf "$dir/results" "$dir/repro"
    [ "$status" -le 1 ] || { echo "regenerate.sh: pytest $* exited $status" >&2; exit "$status"; }
}

parts=${*:-main optax triton torch-compile cut-cross-entropy torch-chunked}
for part in $parts; do
    case $part in
    main)
        report "$OUT" --impl=torch --impl=numpy --profile=quick --dtype=float32 --dtype=float16 \
            --speed --speed-dtype=float32 ;;
    optax)
        report "$OUT/optax" --impl=examples/optax_losses.py --profile=quick ;;
    triton)
        (export TRITON_INTERPRET=1  # Triton's interpreter: the CPU
         report "$OUT/triton" --impl=examples/triton_multilabel.py --profile=quick) ;;
    cut-cross-entropy)
        report "$OUT/cut-cross-entropy" --impl=examples/cce_losses.py --loss=linear_cross_entropy \
            --profile=quick --check-timeout=300 ;;
    torch-compile)
        report "$OUT/torch-compile" --impl=torch-compile --profile=quick --dtype=float32 \
            --loss=cross_entropy --loss=nll_loss --loss=binary_cross_entropy_with_logits \
            --loss=kl_div --loss=l1_loss --loss=mse_loss --loss=soft_margin_loss ;;
    torch-chunked)
        report "$OUT/torch-chunked" --impl=torch --impl=torch-chunked --loss=linear_cross_entropy \
            --profile=quick --speed --speed-dtype=float32 --speed-dtype=bfloat16 ;;
    *)
        echo "regenerate.sh: no part '$part' (main, optax, triton, torch-compile," \
            "cut-cross-entropy, torch-chunked)" >&2
        exit 2 ;;
    esac
done
du -sh "$OUT"
