"""`make local-api`: the whole template under `sam local start-api`, on moto's server as AWS.

    python infra/local_api.py [--port 3000] [--ready-file PATH]

Starts, all named ``chroma-sls-<run id>``: a docker network; moto's server in a container on it
(DynamoDB, S3, SQS and Secrets Manager) with the resources the stack creates, read from
template.yaml; and ``sam local start-api --docker-network <network>``, whose function containers
reach moto as ``http://<moto container>:5000`` (SAM CLI ignores ``--docker-network host``, so a
server on the host's loopback is out of their reach). Auth is on, as on AWS: the admin token goes
into the Secrets Manager secret and each function bootstraps it at cold start. The token is
``$CHROMA_SERVERLESS_ADMIN_TOKEN`` when set, else generated and printed once.

Expects a finished ``sam build`` (the Makefile target runs it) and the Lambda base image
(``public.ecr.aws/lambda/python:3.12``, pulled or built locally; the moto image is built FROM it).
Prints the URL once the API answers; stops everything it started on Ctrl-C, SIGTERM or failure.
``--ready-file`` receives the URL, token and moto's host address as JSON (for the end-to-end test).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"
BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"
MOTO_VERSION = "5.2.5"
MOTO_IMAGE = f"chroma-serverless-moto:{MOTO_VERSION}"
MOTO_PORT = 5000
REGION = "us-east-1"
# moto accepts any credentials; these keep boto3 (here and in the functions) off real ones.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
FUNCTIONS = ("ControlFunction", "DataFunction", "MaintenanceFunction")
START_TIMEOUT = 300  # s: sam local starts its containers eagerly, one cold start each
STOP_TIMEOUT = 30

# Built FROM the Lambda base image (a Python 3.12 with pip, present wherever the data image
# builds), so no other registry is needed.
MOTO_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN pip install --no-cache-dir "moto[server]=={MOTO_VERSION}"
ENTRYPOINT ["/var/lang/bin/moto_server", "-H", "0.0.0.0", "-p", "{MOTO_PORT}"]
"""


class CloudFormationLoader(yaml.SafeLoader):
    """Reads ``!Ref``, ``!Sub``, ``!GetAtt`` ... as plain values."""


CloudFormationLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        loader.construct_scalar(node)
        if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
    ),
)


def load_template(path: Path = ROOT / "template.yaml") -> dict[str, Any]:
    """A SAM template as plain data (intrinsic functions kept as their arguments)."""
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=CloudFormationLoader)
    return loaded


# `make local-api` runs this under make, which dies on SIGTERM without passing it on: a change of
# parent means the command was stopped, and counts as SIGTERM.
PARENT = os.getppid()


def orphaned() -> bool:
    return os.getppid() != PARENT


def log(message: str) -> None:
    print(f"local-api: {message}", file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True, capture: bool = True) -> str:
    done = subprocess.run(
        ["docker", *args], check=False, capture_output=capture, text=True, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {(done.stderr or '').strip()}")
    return (done.stdout or "").strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, probe: Any, timeout: float, alive: Any = None) -> None:
    """Poll ``probe()`` until truthy; fail after ``timeout`` s or once ``alive()`` is false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if orphaned():
            raise KeyboardInterrupt
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: the process exited")
        with contextlib.suppress(Exception):
            if probe():
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what}: no answer within {timeout:.0f} s")


def http_status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


class LocalApi:
    """Everything one run starts, and how to stop it (each step records what to undo)."""

    def __init__(self, port: int, token: str) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.name = f"chroma-sls-{self.run_id}"
        self.moto_name = f"{self.name}-moto"
        self.port = port
        self.token = token
        self.network_created = False
        self.moto_started = False
        self.sam: subprocess.Popen[bytes] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.moto_host_endpoint = ""
        self.resources: dict[str, str] = {}

    # ---------------------------------------------------------------------------- start

    def start(self) -> None:
        if not BUILT_TEMPLATE.is_file():
            raise RuntimeError(f"{BUILT_TEMPLATE} is missing: run `make sam-build` first")
        # `sam build ControlFunction` (make sam) rewrites the built template without the images;
        # sam local then fails with "Resource ID was not provided".
        built = load_template(BUILT_TEMPLATE)["Resources"]
        unbuilt = [
            name
            for name in FUNCTIONS
            if built[name]["Properties"].get("PackageType") == "Image"
            and not built[name]["Properties"].get("ImageUri")
        ]
        if unbuilt:
            raise RuntimeError(f"{', '.join(unbuilt)} not built: run `make sam-build` first")
        ensure_moto_image()
        docker("network", "create", self.name)
        self.network_created = True
        # Published on the host's loopback only (a free port) for this script and the tests;
        # the functions use the network alias.
        docker(
            "run", "-d", "--rm", "--name", self.moto_name, "--network", self.name,
            "-p", f"127.0.0.1::{MOTO_PORT}", MOTO_IMAGE,
        )  # fmt: skip
        self.moto_started = True
        host_port = docker("port", self.moto_name, f"{MOTO_PORT}/tcp").splitlines()[0]
        self.moto_host_endpoint = "http://" + host_port.replace("0.0.0.0", "127.0.0.1")
        wait_for(
            "moto's server",
            lambda: http_status(self.moto_host_endpoint + "/moto-api/") == 200,
            60,
        )
        self.resources = create_resources(self.moto_host_endpoint, self.token)
        env_file = self.workdir / "env.json"
        env_file.write_text(json.dumps(self.function_env()), encoding="utf-8")
        self.start_sam(env_file)

    def function_env(self) -> dict[str, dict[str, str]]:
        internal = f"http://{self.moto_name}:{MOTO_PORT}"
        queue_url = self.resources["queue_url"].replace(self.moto_host_endpoint, internal)
        common = {
            "CHROMA_SERVERLESS_AWS_ENDPOINT": internal,
            "CHROMA_SERVERLESS_CATALOG_TABLE": self.resources["table"],
            "CHROMA_SERVERLESS_RECORDS_URI": f"s3://{self.resources['bucket']}/records",
            "CHROMA_SERVERLESS_ADMIN_TOKEN_SECRET": self.resources["secret"],
        }
        env = {name: dict(common) for name in FUNCTIONS}
        env["DataFunction"]["CHROMA_SERVERLESS_MAINTENANCE_QUEUE_URL"] = queue_url
        return env

    def start_sam(self, env_file: Path) -> None:
        command = [
            "sam", "local", "start-api",
            "--template", str(BUILT_TEMPLATE),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--docker-network", self.name,
            "--env-vars", str(env_file),
            "--skip-pull-image",
            "--warm-containers", "EAGER",
            "--region", REGION,
        ]  # fmt: skip
        env = {**os.environ, **FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION}
        env["SAM_CLI_TELEMETRY"] = "0"
        log_path = self.workdir / "sam.log"
        log(f"sam local start-api on 127.0.0.1:{self.port} (log: {log_path})")
        with log_path.open("wb") as sink:
            # Own process group: Ctrl-C in the terminal reaches this script, which then stops
            # sam itself (SIGINT, so it removes its containers) and waits for it.
            self.sam = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        sam = self.sam
        try:
            wait_for(
                "sam local start-api",
                lambda: http_status(f"{self.url}/api/v2/heartbeat") == 200,
                START_TIMEOUT,
                alive=lambda: sam.poll() is None,
            )
        except Exception:
            tail = log_path.read_text(errors="replace").splitlines()[-40:]
            log("sam local start-api did not come up; the end of its log:\n" + "\n".join(tail))
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def info(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "token": self.token,
            "aws_endpoint": self.moto_host_endpoint,
            "region": REGION,
            "network": self.name,
            "moto_container": self.moto_name,
            "sam_log": str(self.workdir / "sam.log"),
            **self.resources,
        }

    # ----------------------------------------------------------------------------- stop

    def stop(self) -> None:
        if self.sam is not None and self.sam.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sam.pid, signal.SIGINT)
            try:
                self.sam.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"sam did not stop within {STOP_TIMEOUT} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.sam.pid, signal.SIGKILL)
                self.sam.wait()
        if self.network_created:
            # Whatever is still attached: function containers sam could not remove, and moto.
            left = docker("ps", "-aq", "--filter", f"network={self.name}", check=False).split()
            if left:
                docker("rm", "-f", *left, check=False)
        if self.moto_started:
            docker("rm", "-f", self.moto_name, check=False)
        if self.network_created:
            docker("network", "rm", self.name, check=False)
        log("stopped")


def ensure_moto_image() -> None:
    inspect = ["docker", "image", "inspect", MOTO_IMAGE]
    if subprocess.run(inspect, capture_output=True, check=False).returncode == 0:
        return
    log(f"building {MOTO_IMAGE} from {BASE_IMAGE}")
    done = subprocess.run(
        ["docker", "build", "-t", MOTO_IMAGE, "-"],
        input=MOTO_DOCKERFILE,
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building {MOTO_IMAGE} failed:\n{done.stdout[-2000:]}{done.stderr}")


def create_resources(endpoint: str, token: str) -> dict[str, str]:
    """The stack's catalog table, records bucket, maintenance queues and admin-token secret, on
    moto, with the properties template.yaml gives them."""
    resources = load_template()["Resources"]

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    table = resources["CatalogTable"]["Properties"]
    client("dynamodb").create_table(
        TableName="chroma-serverless-catalog",
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
        BillingMode=table["BillingMode"],
    )
    client("s3").create_bucket(Bucket="chroma-serverless-records")

    sqs = client("sqs")

    def queue_attributes(props: dict[str, Any]) -> dict[str, str]:
        keys = ("FifoQueue", "DelaySeconds", "VisibilityTimeout", "MessageRetentionPeriod")
        return {
            k: str(props[k]).lower() if k == "FifoQueue" else str(props[k])
            for k in keys
            if k in props
        }

    dead = resources["MaintenanceDeadLetters"]["Properties"]
    dead_url = sqs.create_queue(
        QueueName="chroma-serverless-maintenance-dlq.fifo", Attributes=queue_attributes(dead)
    )["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue = resources["MaintenanceQueue"]["Properties"]
    redrive = {
        "deadLetterTargetArn": dead_arn,
        "maxReceiveCount": str(queue["RedrivePolicy"]["maxReceiveCount"]),
    }
    queue_url = sqs.create_queue(
        QueueName="chroma-serverless-maintenance.fifo",
        Attributes={**queue_attributes(queue), "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    secret = client("secretsmanager").create_secret(
        Name="chroma-serverless-admin-token",
        Description=resources["AdminTokenSecret"]["Properties"]["Description"],
        SecretString=token,
    )
    return {
        "table": "chroma-serverless-catalog",
        "bucket": "chroma-serverless-records",
        "queue_url": queue_url,
        "dead_letter_queue_url": dead_url,
        "secret": secret["ARN"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, help="write URL, token, moto endpoint here")
    args = parser.parse_args(argv)

    given = os.environ.get("CHROMA_SERVERLESS_ADMIN_TOKEN")
    token = given or "csk-" + secrets.token_urlsafe(24)
    stack = LocalApi(args.port or free_port(), token)

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        if args.ready_file:
            args.ready_file.write_text(json.dumps(stack.info()), encoding="utf-8")
        if not given:
            print(f"admin token (shown once): {token}", flush=True)
        print(f"chroma-serverless API (sam local start-api) at {stack.url}", flush=True)
        print(
            f'  chromadb.HttpClient(host="{stack.url}", headers={{"Authorization": '
            f'"Bearer <token>"}}); Ctrl-C stops it',
            flush=True,
        )
        assert stack.sam is not None
        while stack.sam.poll() is None:
            if orphaned():
                raise KeyboardInterrupt
            time.sleep(1)
        log(f"sam local start-api exited ({stack.sam.returncode})")
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        # Signals during cleanup must not cut it short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
