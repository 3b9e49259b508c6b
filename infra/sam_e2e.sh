#!/usr/bin/env bash
# `make sam-e2e`: the end-to-end test through `sam local start-api` (tests/lambda/test_sam_local.py),
# after the unit suite in CI. Needs Docker and the Lambda base image: runs
# ../shared/tools/lambda-docker.sh (idempotent; override with LAMBDA_DOCKER=...) for both, and
# stops by PID the daemon it started. Everything else the test starts (network, moto, sam's
# containers) is named chroma-sls-<run id> and removed by the test; a trap removes whatever a
# crash left behind, on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BIN:?BIN, the project venv bin, comes from make}" "${SAM_VENV:?}" "${PYTHON312:?}"
LAMBDA_DOCKER=${LAMBDA_DOCKER:-../shared/tools/lambda-docker.sh}
T0=$(date +%s)
step() { echo "[sam-e2e +$(( $(date +%s) - T0 ))s] $*" >&2; }

DOCKERD_PID=""
BEFORE_NETWORKS=""
cleanup() {
  status=$?
  trap - EXIT INT TERM
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    # Networks this run created (chroma-sls-*, absent before it) and anything on them.
    for net in $(docker network ls --filter name=chroma-sls- --format '{{.Name}}'); do
      if [[ " $BEFORE_NETWORKS " == *" $net "* ]]; then continue; fi
      step "removing leftover network $net"
      ids=$(docker ps -aq --filter "network=$net")
      [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
      docker network rm "$net" >/dev/null 2>&1 || true
    done
  fi
  if [ -n "$DOCKERD_PID" ]; then
    step "stopping dockerd (pid $DOCKERD_PID, started by this run)"
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  fi
  step "done (exit $status)"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -f "$LAMBDA_DOCKER" ] || { echo "sam-e2e: $LAMBDA_DOCKER not found (set LAMBDA_DOCKER)" >&2; exit 1; }
step "Docker, SAM CLI and the Lambda base image ($LAMBDA_DOCKER)"
docker info >/dev/null 2>&1 && DOCKER_WAS_UP=1 || DOCKER_WAS_UP=""
if ! setup=$(timeout 900 bash "$LAMBDA_DOCKER"); then
  # It may have started dockerd before failing: stop that one (never a daemon already running).
  pidfile=${WORK:-/var/tmp/lambda-docker}/dockerd.pid
  [ -n "$DOCKER_WAS_UP" ] || [ ! -f "$pidfile" ] || DOCKERD_PID=$(cat "$pidfile")
  echo "sam-e2e: $LAMBDA_DOCKER failed" >&2
  exit 1
fi
eval "$setup"
BEFORE_NETWORKS=$(docker network ls --filter name=chroma-sls- --format '{{.Name}}' | tr '\n' ' ')

step "sam build (every function; the data image from build/model)"
mkdir -p build
export PATH="$SAM_VENV/bin:$(dirname "$PYTHON312"):$PATH" DOCKER_BUILDKIT=0 SAM_CLI_TELEMETRY=0
timeout 1800 "${MAKE:-make}" --no-print-directory sam-build >build/sam-build.log 2>&1 \
  || { tail -40 build/sam-build.log; exit 1; }
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(datafunction|maintenancefunction):' >&2 || true

step "pytest tests/lambda/test_sam_local.py"
CHROMA_SERVERLESS_SAM_E2E=1 timeout 1800 "$BIN/python" -m pytest tests/lambda/test_sam_local.py -v -p no:cacheprovider
step "start times (build/lambda-starts.json)"
cat build/lambda-starts.json >&2
