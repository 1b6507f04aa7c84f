#!/usr/bin/env bash
# Sets the project up on a fresh machine: checks the prerequisites, creates .venv with the
# pinned requirements, installs the Node tools of the embedded stack, and (when it can) the
# Debian prometheus, prometheus-pushgateway and postgresql packages. Idempotent: a second run with nothing changed takes
# a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
missing=()

# --- prerequisites ---------------------------------------------------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    PYTHON=python3
  else
    missing+=("Python 3.11 or newer (python3.11 on PATH, or set PYTHON=...)")
  fi
fi
java_major=$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n1 || true)
if [ -z "${java_major}" ] || [ "${java_major}" -lt 17 ]; then
  missing+=("Java 17 or newer (java on PATH): the KCL MultiLangDaemon runs on it")
fi
node_major=$(node --version 2>/dev/null | sed -nE 's/^v([0-9]+).*/\1/p' || true)
if [ -z "${node_major}" ] || [ "${node_major}" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
  missing+=("Node.js 20 or newer with npm: kinesis-local (the Kinesis emulator) runs on it")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: missing prerequisites:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi

# --- Python virtualenv, re-installed only when a requirements file changed -------------------
# pip into the virtualenv, quietly (the filter drops pip's notes about extra index folders some
# machines configure).
venv_pip() {
  "$VENV/bin/python" -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
stamp="$VENV/.requirements.sha256"
want=$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing pinned requirements (requirements/dev.txt)"
  # uv (pinned in requirements/bootstrap.txt) installs the same pins in seconds where pip takes
  # about a minute; pip is the fallback when uv cannot be installed or cannot reach the index.
  # Byte code is compiled here, as pip does: where PYTHONDONTWRITEBYTECODE is set, every one of
  # the hundreds of Python processes the tests and the demo start would otherwise compile
  # MLflow, pandas and scikit-learn again (the suite ran 1.6 times slower).
  if ! { venv_pip -r requirements/bootstrap.txt \
      && "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python" -r requirements/dev.txt; }; then
    echo "setup: uv could not install the requirements; installing them with pip" >&2
    venv_pip --upgrade pip
    venv_pip -r requirements/dev.txt
  fi
  echo "$want" > "$stamp"
fi

# --- Node tools of the embedded stack ---------------------------------------------------------
nstamp=devstack/node_modules/.lock.sha256
nwant=$(sha256sum devstack/package-lock.json | cut -d' ' -f1)
if [ ! -f "$nstamp" ] || [ "$(cat "$nstamp")" != "$nwant" ]; then
  echo "setup: installing kinesis-local (npm ci)"
  npm ci --prefix devstack --no-audit --no-fund --loglevel=error
  echo "$nwant" > "$nstamp"
fi

# --- Debian packages: prometheus/promtool (metrics and alert-rule tests, demo), the Pushgateway
# (the learning loop's monitor pushes to it) and postgresql (tests/deploy run the MLflow image's
# entry point against a throwaway PostgreSQL) ---------------------------------------------------
apt_missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || apt_missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || command -v pushgateway >/dev/null 2>&1 || apt_missing+=(prometheus-pushgateway)
command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_missing+=(postgresql)
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${apt_missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null; }
    # The packages start a system Prometheus on :9090, a Pushgateway on :9091 and a PostgreSQL
    # cluster on :5432; the project runs its own instances.
    (systemctl stop prometheus || service prometheus stop || pkill -x prometheus) >/dev/null 2>&1 || true
    (systemctl stop prometheus-pushgateway || service prometheus-pushgateway stop) >/dev/null 2>&1 || true
    (systemctl stop postgresql || service postgresql stop) >/dev/null 2>&1 || true
  else
    echo "setup: missing Debian packages ${apt_missing[*]} (apt-get install ${apt_missing[*]});" >&2
    echo "       the tests that run a real Prometheus or promtool will fail until they are." >&2
  fi
fi
echo "setup: ready"
