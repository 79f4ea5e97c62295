"""Tests of the local AWS emulator launcher (tests/emulator/run) and its extension plumbing.

Run with the emulator venv's Python (scripts/test does):
    "$(tests/emulator/run --prepare)/bin/python" -m unittest discover -s tests/emulator -v

Every server here listens on 127.0.0.1 on a free port and is stopped by the test that started it.
Also checks shared/schema/announcement-v1.schema.json against its examples (the Rust unit tests
check serde against the same examples, so schema and types agree).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RUN = HERE / "run"
SCHEMA_DIR = REPO / "shared" / "schema"
sys.path.insert(0, str(HERE))

import lakemesh_moto  # noqa: E402

READY_TIMEOUT = 60
STOP_TIMEOUT = 10
# The built-in extensions, as the ready line lists them (sorted by name).
EXTENSIONS = "glue-crawler-runs,lakeformation-permissions,s3-headbucket-permission"
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "eu-west-3"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """One launcher process; `url` once ready. Drains stderr so moto never blocks on a full pipe."""

    def __init__(self, *args: str, stdin=subprocess.PIPE):
        self.proc = subprocess.Popen(
            [str(RUN), *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.stderr: list[str] = []
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        self.ready_line = self._read_ready()
        self.url = self.ready_line.split()[2] if self.ready_line else None

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    def _read_ready(self) -> str | None:
        box: list[bytes] = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(READY_TIMEOUT)
        line = box[0].decode().strip() if box else ""
        return line or None

    def stop(self) -> int:
        """SIGTERM to the process group (if still running), wait, close the pipes; the exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self._drain.join(5)
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.url, **CREDS)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LauncherTest(unittest.TestCase):
    def start(self, *args: str, **kw) -> Emulator:
        emu = Emulator(*args, **kw)
        self.addCleanup(emu.stop)
        self.assertIsNotNone(emu.url, f"no ready line; stderr: {emu.stderr[-20:]}")
        return emu

    def test_s3_and_sqs_answer_on_the_given_port(self):
        port = free_port()
        emu = self.start("--port", str(port), "--quiet")
        self.assertRegex(emu.ready_line, rf"^lakemesh-emulator: ready http://127\.0\.0\.1:{port} moto 5\.2\.5 extensions: {EXTENSIONS}$")

        s3 = emu.client("s3")
        s3.create_bucket(Bucket="probe", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        put = s3.put_object(Bucket="probe", Key="a/b.txt", Body=b"hello", ChecksumAlgorithm="SHA256")
        self.assertEqual(put["ChecksumSHA256"], "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
        got = s3.get_object(Bucket="probe", Key="a/b.txt", ChecksumMode="ENABLED")
        self.assertEqual(got["Body"].read(), b"hello")
        self.assertEqual(got["ChecksumSHA256"], put["ChecksumSHA256"])

        sqs = emu.client("sqs")
        url = sqs.create_queue(QueueName="probe")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="{}", MessageAttributes={
            "producer_id": {"DataType": "String", "StringValue": "chu-lyon"}})
        msgs = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], MessageSystemAttributeNames=["SenderId"],
                                   WaitTimeSeconds=1)["Messages"]
        self.assertEqual(msgs[0]["MessageAttributes"]["producer_id"]["StringValue"], "chu-lyon")
        self.assertTrue(msgs[0]["Attributes"]["SenderId"])

    def test_health_endpoint_reports_version_and_extensions(self):
        import urllib.request

        emu = self.start("--port", "0", "--quiet")
        with urllib.request.urlopen(f"{emu.url}/_lakemesh/health", timeout=5) as r:
            body = json.load(r)
        self.assertEqual(body["ready"], True)
        self.assertEqual(body["moto"], "5.2.5")
        self.assertEqual([e["name"] for e in body["extensions"]], EXTENSIONS.split(","))
        self.assertTrue(all(e["installed"] and e["changes"] for e in body["extensions"]), body)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{emu.url}/_lakemesh/nope", timeout=5)
        self.assertEqual(e.exception.code, 404)

    def test_sigterm_stops_cleanly_and_frees_the_port(self):
        emu = Emulator("--port", "0")
        self.assertIsNotNone(emu.url, emu.stderr)
        port = int(emu.url.rsplit(":", 1)[1])
        self.assertTrue(port_open(port))
        t0 = time.monotonic()
        self.assertEqual(emu.stop(), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("lakemesh-emulator: stopped (SIGTERM)", emu.stderr)
        self.assertFalse(port_open(port))

    def test_sigint_stops_cleanly(self):
        emu = Emulator("--port", "0", "--quiet")
        self.addCleanup(emu.stop)
        self.assertIsNotNone(emu.url, emu.stderr)
        os.killpg(emu.proc.pid, signal.SIGINT)
        self.assertEqual(emu.proc.wait(STOP_TIMEOUT), 0)
        emu._drain.join(5)
        self.assertIn("lakemesh-emulator: stopped (SIGINT)", emu.stderr)

    def test_watch_parent_stops_at_stdin_eof(self):
        emu = Emulator("--port", "0", "--quiet", "--watch-parent")
        self.addCleanup(emu.stop)
        self.assertIsNotNone(emu.url, emu.stderr)
        emu.proc.stdin.close()
        self.assertEqual(emu.proc.wait(STOP_TIMEOUT), 0)
        emu._drain.join(5)
        self.assertIn("lakemesh-emulator: stopped (stdin closed)", emu.stderr)

    def test_watch_parent_stops_when_the_parent_is_killed(self):
        # A parent that starts the emulator, prints its pid, then is killed with SIGKILL: nothing
        # runs on its behalf, as with a test binary that exits without dropping its statics.
        parent_code = (
            "import subprocess, sys\n"
            f"p = subprocess.Popen([{str(RUN)!r}, '--port', '0', '--quiet', '--watch-parent'],"
            " stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n"
            "p.stdout.readline()\n"
            "print(p.pid, flush=True)\n"
            "import time; time.sleep(600)\n"
        )
        parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
        self.addCleanup(parent.stdout.close)
        self.addCleanup(lambda: parent.poll() is None and parent.kill())
        line = parent.stdout.readline().decode().strip()
        self.assertTrue(line.isdigit(), line)
        child = int(line)
        self.assertTrue(pid_alive(child))
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + STOP_TIMEOUT
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = pid_alive(child)
        if alive:
            os.kill(child, signal.SIGKILL)
        self.assertFalse(alive, "the emulator outlived its parent")

    def test_port_taken_is_an_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            emu = Emulator("--port", str(port))
            self.addCleanup(emu.stop)
            self.assertIsNone(emu.url)
            self.assertEqual(emu.proc.wait(STOP_TIMEOUT), 1)
            emu._drain.join(5)
        self.assertTrue(any(f"cannot listen on 127.0.0.1:{port}" in line for line in emu.stderr), emu.stderr)

    def test_head_bucket_is_authorised_by_list_bucket(self):
        emu = self.start("--port", "0", "--quiet")
        s3 = emu.client("s3")
        s3.create_bucket(Bucket="probe", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        iam = emu.client("iam")
        keys = {}
        for user, action in [("lister", "s3:ListBucket"), ("putter", "s3:PutObject")]:
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": action, "Resource": "arn:aws:s3:::probe"}]}))
            k = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (k["AccessKeyId"], k["SecretAccessKey"])
        import urllib.request
        urllib.request.urlopen(urllib.request.Request(f"{emu.url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}), timeout=5)
        import boto3
        import botocore.exceptions

        def as_user(user):
            key, secret = keys[user]
            return boto3.client("s3", endpoint_url=emu.url, aws_access_key_id=key, aws_secret_access_key=secret,
                                region_name="eu-west-3")

        as_user("lister").head_bucket(Bucket="probe")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            as_user("putter").head_bucket(Bucket="probe")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)

    def test_non_loopback_host_is_refused(self):
        r = subprocess.run([str(RUN), "--port", "0", "--host", "0.0.0.0"], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 2)
        self.assertIn("only loopback addresses are allowed", r.stderr)

    def test_help_lists_extensions(self):
        r = subprocess.run([str(RUN), "--help"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--port N", r.stdout)
        self.assertIn("extensions:\n  glue-crawler-runs (glue): ", r.stdout)
        self.assertIn("  lakeformation-permissions (lakeformation): ", r.stdout)
        self.assertIn("  s3-headbucket-permission (s3): HeadBucket is authorised by s3:ListBucket", r.stdout)

    def test_extension_from_path_is_served_through_boto3(self):
        emu = self.start("--port", "0", "--quiet", "--extension-path", str(HERE / "fixtures"))
        listed = ",".join(sorted(EXTENSIONS.split(",") + ["probe-get-data-lake-principal"]))
        self.assertTrue(emu.ready_line.endswith(f"extensions: {listed}"), emu.ready_line)
        lf = emu.client("lakeformation")
        self.assertEqual(lf.get_data_lake_principal()["Identity"], "arn:aws:sts::123456789012:user/moto")
        # moto's own calls still work beside it
        self.assertEqual(lf.list_resources()["ResourceInfoList"], [])

    def test_broken_extension_stops_the_launcher(self):
        with tempfile.TemporaryDirectory() as d:
            Path(d, "broken.py").write_text(
                "from moto.lakeformation import responses\n"
                "from lakemesh_moto import add_action, extension\n"
                "@extension('clash', service='lakeformation', summary='x')\n"
                "def install():\n"
                "    add_action(responses.LakeFormationResponse, 'ListResources', lambda self: '{}')\n"
            )
            emu = Emulator("--port", "0", "--extension-path", d)
            self.addCleanup(emu.stop)
            self.assertIsNone(emu.url)
            self.assertEqual(emu.proc.wait(STOP_TIMEOUT), 1)
            emu._drain.join(5)
        msg = "\n".join(emu.stderr)
        self.assertIn("extension 'clash'", msg)
        self.assertIn("list_resources already exists in moto", msg)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class PlumbingTest(unittest.TestCase):
    """The registry and the add_* helpers, on stand-in classes (no server)."""

    def setUp(self):
        saved = dict(lakemesh_moto._REGISTRY)
        self.addCleanup(lambda: (lakemesh_moto._REGISTRY.clear(), lakemesh_moto._REGISTRY.update(saved)))

    def test_add_action_names_the_method_like_moto_and_refuses_clashes(self):
        class Response:
            def list_things(self):
                return "moto"

        lakemesh_moto.add_action(Response, "CreateDataCellsFilter", lambda self: "ours")
        self.assertEqual(Response().create_data_cells_filter(), "ours")
        with self.assertRaisesRegex(lakemesh_moto.ExtensionError, "list_things already exists"):
            lakemesh_moto.add_action(Response, "ListThings", lambda self: "ours")
        with self.assertRaisesRegex(lakemesh_moto.ExtensionError, "needs a reason"):
            lakemesh_moto.add_action(Response, "ListThings", lambda self: "ours", replace=True)
        lakemesh_moto.add_action(Response, "ListThings", lambda self: "ours", replace=True, reason="moto ignores X")
        self.assertEqual(Response().list_things(), "ours")
        with self.assertRaisesRegex(lakemesh_moto.ExtensionError, "not an AWS API action name"):
            lakemesh_moto.add_action(Response, "create_thing", lambda self: "")

    def test_add_url_path_and_backend_method(self):
        urls = types.SimpleNamespace(__name__="moto.fake.urls", url_paths={"{0}/ListThings$": "moto"})
        lakemesh_moto.add_url_path(urls, "{0}/CreateThing$", "ours")
        self.assertEqual(urls.url_paths["{0}/CreateThing$"], "ours")
        with self.assertRaisesRegex(lakemesh_moto.ExtensionError, "already routed"):
            lakemesh_moto.add_url_path(urls, "{0}/ListThings$", "ours")
        with self.assertRaisesRegex(lakemesh_moto.ExtensionError, "must start with"):
            lakemesh_moto.add_url_path(urls, "/CreateThing$", "ours")
        with self.assertRaisesRegex(lakemesh_moto.ExtensionError, "no url_paths"):
            lakemesh_moto.add_url_path(object(), "{0}/X$", "ours")

        class Backend:
            pass

        lakemesh_moto.add_backend_method(Backend, "create_thing", lambda self: 1)
        self.assertEqual(Backend().create_thing(), 1)
        with self.assertRaisesRegex(lakemesh_moto.ExtensionError, "already exists"):
            lakemesh_moto.add_backend_method(Backend, "create_thing", lambda self: 2)

    def test_registry_records_changes_and_refuses_duplicates(self):
        class Response:
            pass

        @lakemesh_moto.extension("demo", service="fake", summary="demo extension")
        def install():
            lakemesh_moto.add_action(Response, "DoThing", lambda self: "")

        with self.assertRaisesRegex(lakemesh_moto.ExtensionError, "registered twice"):
            lakemesh_moto.extension("demo", service="fake", summary="again")(lambda: None)
        exts = lakemesh_moto.install_all()
        demo = [e for e in exts if e.name == "demo"][0]
        self.assertTrue(demo.installed)
        self.assertEqual(demo.changes, ["added action DoThing on Response"])
        # Installing again does not run install() twice.
        lakemesh_moto.install_all()
        self.assertEqual(demo.changes, ["added action DoThing on Response"])


class AnnouncementSchemaTest(unittest.TestCase):
    """shared/schema/announcement-v1.schema.json against shared/schema/examples/.

    valid/ must pass; invalid/ must fail the schema; semantic/ must pass the schema (the rule
    broken there, such as a row count that does not add up, is one JSON Schema cannot express and
    only lakemesh_shared::announcement's validation catches). The Rust tests expect serde and the
    validation to reject invalid/ and semantic/ and accept valid/.
    """

    @classmethod
    def setUpClass(cls):
        from jsonschema import Draft202012Validator, FormatChecker

        schema = json.loads((SCHEMA_DIR / "announcement-v1.schema.json").read_text())
        Draft202012Validator.check_schema(schema)
        cls.validator = Draft202012Validator(schema, format_checker=FormatChecker())

    def examples(self, kind: str) -> list[Path]:
        files = sorted((SCHEMA_DIR / "examples" / kind).glob("*.json"))
        self.assertTrue(files, f"no examples in {kind}/")
        return files

    def test_valid_examples_pass(self):
        for f in self.examples("valid"):
            with self.subTest(example=f.name):
                errors = [e.message for e in self.validator.iter_errors(json.loads(f.read_text()))]
                self.assertEqual(errors, [])

    def test_invalid_examples_fail(self):
        for f in self.examples("invalid"):
            with self.subTest(example=f.name):
                self.assertFalse(self.validator.is_valid(json.loads(f.read_text())), "schema accepted it")

    def test_semantic_examples_pass_the_schema(self):
        for f in self.examples("semantic"):
            with self.subTest(example=f.name):
                errors = [e.message for e in self.validator.iter_errors(json.loads(f.read_text()))]
                self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main()
