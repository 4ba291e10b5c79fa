"""The ``tether`` command as a user runs it: a real process, real models.

Bad input must give one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["--model", "smollm2-135m"]


def tether(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "tether", *args], input=stdin, capture_output=True,
                          env=dict(os.environ, COLUMNS="200"), timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    paths = {
        "empty": b"",
        "blank": b"   \n\t\n",
        "latin1": "caf\u00e9 cr\u00e8me".encode("latin-1"),
        "huge": ("The quick brown fox jumps over the lazy dog. " * 2500).encode(),
        "enormous": ("The quick brown fox jumps over the lazy dog. " * 4400).encode(),  # under the 200,000-character cap, over summarize's 12 parts
        "ok": b"Ths sentense has two erors.",
        "bad_json": b'[{"app": "Mail", ',
        "not_list": b'{"app": "Mail"}',
        "no_body": json.dumps([{"app": "Mail", "sender": "Bo", "timestamp": "2026-11-26T10:00:00"}]).encode(),
        "blank_body": json.dumps([{"app": "Mail", "sender": "Bo", "body": "  ", "timestamp": "2026-11-26T10:00:00"}]).encode(),
        "no_origin": json.dumps([{"app": "Mail", "body": "hi", "timestamp": "2026-11-26T10:00:00"}]).encode(),
        "bad_time": json.dumps([{"app": "Mail", "sender": "Bo", "body": "hi", "timestamp": "yesterday-ish"}]).encode(),
        "empty_list": b"[]",
        "latin1_json": '[{"app": "Mail", "sender": "Jos\u00e9", "body": "hi", "timestamp": "2026-11-26T10:00:00"}]'.encode("latin-1"),
        "far_future": json.dumps([{"app": "Mail", "sender": "Bo", "body": "hi", "timestamp": "9999-12-31T23:59:59-05:00"}]).encode(),
        "year_one": json.dumps([{"app": "Mail", "sender": "Bo", "body": "hi", "timestamp": "0001-01-01T00:00:00"}]).encode(),
    }
    for name, data in paths.items():
        (d / name).write_bytes(data)
    return {name: d / name for name in paths}


TEXT_COMMANDS = [["proofread"], ["rewrite", "--tone", "concise"], ["reply"], ["summarize-text", "--form", "key_points"]]


@pytest.mark.parametrize("cmd", TEXT_COMMANDS, ids=lambda c: c[0])
class TestTextCommandsBadInput:
    def test_missing_file(self, cmd, tmp_path):
        assert_one_line_error(tether(*cmd, str(tmp_path / "nope.txt"), *TINY), "no such file")

    def test_directory(self, cmd, tmp_path):
        assert_one_line_error(tether(*cmd, str(tmp_path), *TINY), "is a directory")

    def test_empty_text(self, cmd, files):
        assert_one_line_error(tether(*cmd, str(files["empty"]), *TINY), "empty")
        assert_one_line_error(tether(*cmd, str(files["blank"]), *TINY), "empty")

    def test_empty_stdin(self, cmd):
        assert_one_line_error(tether(*cmd, "-", *TINY, stdin=b""), "empty")

    def test_invalid_utf8(self, cmd, files):
        assert_one_line_error(tether(*cmd, str(files["latin1"]), *TINY), "not valid UTF-8")

    def test_unknown_model(self, cmd, files):
        assert_one_line_error(tether(*cmd, str(files["ok"]), "--model", "gpt-9"), "unknown model 'gpt-9'")

    def test_text_given_where_a_file_goes_points_to_text_option(self, cmd):
        assert_one_line_error(tether(*cmd, "i has a apple", *TINY), "i has a apple: no such file", "--text")

    def test_an_empty_file_name_is_not_the_current_directory(self, cmd):
        assert_one_line_error(tether(*cmd, "", *TINY), "the file name is empty")

    def test_empty_inline_text_or_both_inputs(self, cmd, files):
        assert_one_line_error(tether(*cmd, "--text", "  ", *TINY), "--text: text is empty")
        assert_one_line_error(tether(*cmd, str(files["ok"]), "--text", "hi", *TINY), "FILE or --text, not both")


def test_text_commands_take_the_text_itself():
    proc = tether("reply", "--text", "Can you join the team lunch on Friday?", *TINY, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["message"] == "Can you join the team lunch on Friday?" and len(data["replies"]) == 3
    proc = tether("privacy", "scan", "-t", "Write to alice.chen@example.com", "--json")
    assert proc.returncode == 0, proc.stderr
    cloud = next(t for t in json.loads(proc.stdout)["tiers"] if t["tier"] == "private_cloud")
    assert cloud["payload"] == "Write to <EMAIL_ADDRESS_1>"


@pytest.mark.parametrize("cmd", [c for c in TEXT_COMMANDS if c[0] != "reply"], ids=lambda c: c[0])
def test_text_over_what_a_command_takes(cmd, files):
    """``reply`` is exempt: it reads only an email's first 4,000 characters (test_reply_to_a_huge_email).
    The others go in parts (paragraphs, pieces, map-reduce), up to a limit the error names."""
    name = {"summarize-text": "summarize"}.get(cmd[0], cmd[0])
    text = files["enormous" if name == "summarize" else "huge"]  # summarize reads 112 KB in parts
    proc = tether(*cmd, str(text), *TINY)
    assert_one_line_error(proc, f"too long to {name}", "words; up to about")


@pytest.mark.parametrize(
    "name, needle",
    [
        ("empty", "text is empty"),
        ("bad_json", "invalid JSON at line 1"),
        ("not_list", "JSON list"),
        ("no_body", "notification 0: body: Field required"),
        ("blank_body", "notification 0: body"),
        ("no_origin", "needs a title or a sender"),
        ("bad_time", "notification 0: timestamp"),
        ("empty_list", "empty"),
        ("latin1_json", "not valid UTF-8"),
        ("far_future", "year 9999 is out of range"),
        ("year_one", "year 1 is out of range"),
    ],
)
def test_summarize_bad_input(files, name, needle):
    assert_one_line_error(tether("summarize", str(files[name]), *TINY), needle)


def test_summarize_missing_file(tmp_path):
    assert_one_line_error(tether("summarize", str(tmp_path / "none.json"), *TINY), "no such file")
    assert_one_line_error(tether("summarize", str(tmp_path), *TINY), "is a directory")


def test_summarize_reads_stdin_like_the_other_text_commands():
    assert_one_line_error(tether("summarize", *TINY, stdin=b'[{"app": '), "invalid JSON")
    assert_one_line_error(tether("summarize", *TINY, stdin=b" \n"), "stdin: text is empty")


def test_closed_or_full_standard_streams_are_one_line_errors():
    """`<&-`, `>&-` and a full disk: one line and exit 1, never a traceback or a silent exit 0."""
    shell = lambda line: subprocess.run(["bash", "-c", f"exec {sys.executable} -m tether {line}"],  # noqa: E731
                                        capture_output=True, text=True, timeout=120)
    assert_one_line_error(shell("proofread - <&-"), "standard input is closed")
    assert_one_line_error(shell("chat -m smollm2-135m <&-"), "standard input is closed")
    assert_one_line_error(shell("models list >&-"), "standard output is closed")
    if os.path.exists("/dev/full"):
        assert_one_line_error(shell("models list > /dev/full"), "cannot write the output", "No space left")


def test_bad_options_are_usage_errors():
    proc = tether("rewrite", "--tone", "angry", "-")
    assert proc.returncode == 2 and "Invalid value for '--tone'" in proc.stderr and "Traceback" not in proc.stderr


def test_proofread_json_output(files):
    proc = tether("proofread", str(files["ok"]), *TINY, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["original"] == "Ths sentense has two erors."
    assert set(data) >= {"corrected", "edits", "model", "duration_s", "fallback"}


def test_proofread_keeps_the_wording_unless_rewording_is_allowed(tmp_path):
    """Greedy decoding gives both runs the same model answer: the default is that answer with
    its rewording undone and the sure fixes of what it left made ("i" → "I"),
    ``--allow-rewording`` the answer as it came."""
    from tether.features.proofcheck import with_fixes
    from tether.features.wording import keep_wording

    text = "Hi Sam,\n\ni wanted to let you know that the meeting on thursday have been moved.\n\nBest,\nAna"
    (tmp_path / "note.txt").write_text(text)
    runs = [tether("proofread", str(tmp_path / "note.txt"), *TINY, "--json", *flag) for flag in ([], ["--allow-rewording"])]
    assert all(p.returncode == 0 for p in runs), [p.stderr for p in runs]
    (kept, undone), (as_came, none) = ((json.loads(p.stdout)["corrected"], json.loads(p.stdout)["undone"]) for p in runs)
    assert kept == with_fixes(keep_wording(text, as_came)) and none == []
    assert all(text[u["start"]:u["end"]] == u["original"] for u in undone)
    assert (kept == with_fixes(as_came)) == (undone == [])


def test_reply_reads_stdin(tmp_path):
    proc = tether("reply", "-", *TINY, "--json", stdin=b"Can you make the 3pm call tomorrow?")
    assert proc.returncode == 0, proc.stderr
    replies = json.loads(proc.stdout)["replies"]
    assert len(replies) == 3 and len({r.lower() for r in replies}) == 3


def test_reply_to_a_huge_email(files):
    proc = tether("reply", str(files["huge"]), *TINY, "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["replies"]) == 3


def test_summarize_sample_file_json():
    sample = Path(__file__).parent.parent / "src" / "tether" / "data" / "notifications.json"
    proc = tether("summarize", str(sample), *TINY, "--json")
    assert proc.returncode == 0, proc.stderr
    stacks = json.loads(proc.stdout)["stacks"]
    assert sum(len(s["notifications"]) for s in stacks) == 12
    flags = [s["time_sensitive"] for s in stacks]
    assert flags == sorted(flags, reverse=True)  # time-sensitive stacks first


def test_threads_option(files):
    assert tether("--threads", "0", "models", "list").returncode == 2
    proc = tether("--threads", "1", "proofread", str(files["ok"]), *TINY, "--json")
    assert proc.returncode == 0, proc.stderr


def test_demo_runs_every_feature_then_serves_the_playground(tmp_path):
    """`tether demo --serve`: the README's main command ends with the gateway and playground up."""
    import httpx

    from tether.cloud.serving import spawn, stop

    log, err = tmp_path / "demo.out", tmp_path / "demo.err"
    proc, url = spawn([sys.executable, "-m", "tether", "demo", *TINY, "--json", "--serve", "--port", "0"], log,
                      stderr=err, env={**os.environ, "TETHER_LEDGER": str(tmp_path / "ledger.sqlite")}, timeout=300)
    try:
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and "<title>Tether playground</title>" in page.text
        models = httpx.get(url + "/v1/models", timeout=30).json()
        assert "smollm2-135m" in {m["id"] for m in models["data"]}
        reply = httpx.post(url + "/v1/chat/completions", timeout=120, json={
            "model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi."}]})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    finally:
        stop(proc)
    out = json.loads(log.read_text().split("tether gateway listening on")[0])
    assert out["model"] == "smollm2-135m"
    assert set(out["results"]) == {"notifications", "proofread", "rewrite_friendly", "rewrite_professional",
                                   "rewrite_concise", "summarize_summary", "summarize_key_points",
                                   "summarize_table", "replies", "emoji", "assistant", "calculator", "privacy",
                                   "search"}
    assert out["results"]["calculator"]["answer"] == "17 times 23 = 391"
    assert len(out["results"]["replies"]["replies"]) == 3
    assert out["results"]["emoji"]["glyphs"][0]["place"] == "base"
    for call in out["results"]["assistant"]["tool_calls"]:  # whatever the tiny model chose, it ran for real
        assert call["name"] == "notifications_from" and isinstance(call["output"], str)
    privacy = out["results"]["privacy"]
    cloud = next(t for t in privacy["scan"]["tiers"] if t["tier"] == "private_cloud")
    for value in ("Jordan", "Ruth", "DE89 3704 0044 0532 0130 00"):  # found, and absent from what would leave
        assert value in privacy["text"] and value not in cloud["payload"]
    assert privacy["secret_must_stay_on_device"] and privacy["secret_reasons"] == ["API_KEY"]
    search = out["results"]["search"]
    assert search["indexed"] == 4 and search["hits"][0]["file"] == "dentist.eml"
    assert search["tier"] == "device" and search["rule"] == "no_cloud"
    assert "Traceback" not in err.read_text()


@pytest.mark.parametrize("model, needle", [
    ("no-such-model", "unknown model 'no-such-model'"),
    ("/nonexistent/model.gguf", "file not found: /nonexistent/model.gguf"),
    ("hf:owner", "hf:"),
])
def test_demo_with_a_bad_model_is_one_line(model, needle):
    proc = tether("demo", "--model", model, "--json")
    assert_one_line_error(proc, needle)
    assert proc.stdout == ""  # no half-printed results


def test_models_list_with_a_bad_option_says_so_and_exits_2():
    proc = tether("models", "list", "--bogus")
    assert proc.returncode == 2 and "No such option '--bogus'" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_serve_on_a_taken_port_fails_before_the_demo(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        proc = tether("demo", *TINY, "--serve", "--port", str(taken.getsockname()[1]))
    assert_one_line_error(proc, "cannot listen on 127.0.0.1")
    assert "model" not in proc.stdout  # it never loaded a model


@pytest.mark.parametrize("name, value, needle", [
    ("TETHER_N_CTX", "4k", "$TETHER_N_CTX is '4k'; it must be a whole number from 256 to 131072"),
    ("TETHER_N_CTX", "16", "$TETHER_N_CTX is '16'"),
    ("TETHER_N_CTX", "99999999999", "$TETHER_N_CTX is '99999999999'"),
    ("TETHER_THREADS", "0", "$TETHER_THREADS is '0'; it must be a whole number from 1 to 256"),
    ("TETHER_THREADS", "two", "$TETHER_THREADS is 'two'"),
])
def test_a_bad_environment_setting_is_one_line(files, monkeypatch, name, value, needle):
    monkeypatch.setenv(name, value)
    assert_one_line_error(tether("proofread", str(files["ok"]), *TINY), needle)


def test_an_unwritable_model_cache_is_one_line_and_verified_models_still_list(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("TETHER_CACHE_DIR", str(blocker))
    listed = tether("models", "list", "--json")  # the single-file model is verified in place; its stamp cannot be saved
    assert listed.returncode == 0, listed.stderr
    assert {m["name"]: m["available"] for m in json.loads(listed.stdout)}["smollm2-135m"] is True
    # qwen2.5-0.5b ships in parts that must be joined in the cache, which cannot be written
    assert_one_line_error(tether("models", "pull", "qwen2.5-0.5b"), "cannot assemble it in", "TETHER_CACHE_DIR")
    assert blocker.read_text() == "a file where the cache folder should be"


# Found by an audit of every subcommand's bad input (2026-11-30): each was a traceback.
def test_invalid_utf8_arguments_are_one_line_errors():
    bad = os.fsdecode(b"hi \xff")  # what the shell hands over for invalid UTF-8: a lone surrogate
    assert_one_line_error(tether("chat", *TINY, "--max-tokens", "4", bad), "not valid Unicode")
    assert_one_line_error(tether("emoji", os.fsdecode(b"cat \xff"), "-o", os.devnull + ".svg"), "not valid Unicode")


@pytest.mark.parametrize("content, needle", [
    ("[" * 100_000, "nested too deeply"),
    ('[{"app": "x", "title": "t", "body": ' + "9" * 5000 + ', "timestamp": "2026-01-01T00:00:00"}]', "digits"),
    ('[{"app": "x", "title": "t", "body": "hi \\ud800", "timestamp": "2026-01-01T00:00:00"}]', "not valid Unicode"),
])
def test_hostile_json_is_one_line(tmp_path, content, needle):
    path = tmp_path / "n.json"
    path.write_text(content)
    assert_one_line_error(tether("summarize", *TINY, str(path)), needle)


@pytest.mark.parametrize("spec", ["hf:../../etc/passwd.gguf", "hf:-a/b/x.gguf", "hf:a/b/../x.gguf", "hf:a b/c/x.gguf"])
def test_an_invalid_hub_spec_is_one_line(spec):
    assert_one_line_error(tether("models", "path", spec), "invalid model spec")


def test_serve_with_a_file_that_is_no_model_is_one_line(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    assert_one_line_error(tether("serve", "--port", "0", "--model", str(fake)), "unavailable")


def test_urls_with_a_port_out_of_range_and_bad_releases_are_refused():
    assert_one_line_error(tether("log", "status", "--log", "http://127.0.0.1:70000"), "outside 1-65535")
    assert_one_line_error(tether("relay", "serve", "--node", "a=http://127.0.0.1:9", "--node", "a=http://127.0.0.1:10"),
                          "given twice")
    assert_one_line_error(tether("log", "release", "--log", "http://127.0.0.1:9", "--model", "smollm2-135m",
                                 "--token", "t", "--upstream", "notaurl"), "--upstream")


def test_a_folder_where_a_file_belongs_is_one_line_in_every_command(tmp_path):
    for args in (["summarize", str(tmp_path)], ["stats", "--ledger", str(tmp_path)],
                 ["privacy", "scan", "--config", str(tmp_path), "-"], ["emoji", "-o", str(tmp_path), "cat"]):
        assert_one_line_error(tether(*args, stdin=b"hi"), "is a directory")


def test_commands_that_need_no_privacy_scan_do_not_import_presidio():
    """Importing presidio (with spaCy, and transformers when installed) took 4 to 8 s: every
    `tether` command paid it, `--help` included, because `privacy scan` imported it at load."""
    code = ("import sys; from tether.cli import main; sys.argv = ['tether', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('presidio_analyzer', 'spacy', 'transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "privacy" in proc.stdout and proc.stdout.strip().splitlines()[-1] == "[]"


# Found by an audit of the CLI's error paths (2026-12): each was a traceback or a misleading line.
def test_a_token_or_key_no_http_header_can_carry_is_one_line_before_anything_loads(monkeypatch):
    """A non-ASCII bearer token crashed inside httpx (after `node serve` had loaded its model);
    a non-UTF-8 TETHER_GATEWAY_KEY crashed the gateway as it built its middleware."""
    release = ["log", "release", "--log", "http://127.0.0.1:9", *TINY]
    assert_one_line_error(tether(*release, "--token", "pässwörd"), "--token", "printable ASCII")
    assert "pässwörd" not in tether(*release, "--token", "pässwörd").stderr  # the secret is not echoed
    assert_one_line_error(tether(*release, "--token", " padded"), "--token", "space")
    monkeypatch.setenv("TETHER_LOG_ADMIN_TOKEN", "pässwörd")
    assert_one_line_error(tether(*release), "$TETHER_LOG_ADMIN_TOKEN", "printable ASCII")
    assert_one_line_error(tether("log", "serve", "--port", "0"), "$TETHER_LOG_ADMIN_TOKEN")
    monkeypatch.delenv("TETHER_LOG_ADMIN_TOKEN")
    node = tether("node", "serve", *TINY, "--port", "0", "--log", "http://127.0.0.1:9", "--log-token", "pässwörd")
    assert_one_line_error(node, "--log-token", "printable ASCII")
    assert "node " not in node.stdout  # refused before the model was loaded and measured
    assert_one_line_error(tether("node", "serve", *TINY, "--port", "0", "--metrics-token", "m\u00e9"), "--metrics-token")
    monkeypatch.setenv("TETHER_GATEWAY_KEY", os.fsdecode(b"k\xff"))  # what a non-UTF-8 environment hands over
    assert_one_line_error(tether("serve", "--port", "0", *TINY), "$TETHER_GATEWAY_KEY", "printable ASCII")


def test_the_library_refuses_such_a_token_with_a_typed_error():
    from starlette.applications import Starlette

    from tether.cloud.node import NodeSettings
    from tether.cloud.transparency import LogClient
    from tether.errors import InputError
    from tether.gateway.local_only import LocalOnly

    with LogClient("http://127.0.0.1:9") as client, pytest.raises(InputError, match="the admin token"):
        client.submit_release({}, "pässwörd")
    with LogClient("http://127.0.0.1:9") as client, pytest.raises(InputError, match="the node token"):
        client.submit_attestation({}, "tok\n")
    with pytest.raises(InputError, match="api_key"):
        LocalOnly(Starlette(), api_key=os.fsdecode(b"k\xff"))
    with pytest.raises(InputError, match="metrics_token"):
        NodeSettings(metrics_token="caf\u00e9")


def test_a_model_cache_whose_path_is_not_utf8_works(tmp_path, monkeypatch):
    """TETHER_CACHE_DIR=$'/tmp/c\\xff': the verified-hash stamp's name was hashed from
    ``str(path).encode()``, which a non-UTF-8 path (a lone surrogate) cannot do: a traceback
    after the model had been assembled."""
    import shutil

    from tether.models import catalog

    built = catalog.pull("qwen2.5-0.5b", progress=False)  # in the run's own cache
    cache = Path(os.fsdecode(bytes(tmp_path) + b"/c\xff"))
    (cache / "models").mkdir(parents=True)
    try:  # the assembled file as if this cache had built it: the stamp is what is tested
        os.link(built, cache / "models" / built.name)
    except OSError:
        shutil.copyfile(built, cache / "models" / built.name)
    monkeypatch.setenv("TETHER_CACHE_DIR", str(cache))
    for _ in range(2):  # the first hashes the file and writes its stamp, the second reads the stamp
        proc = tether("models", "path", "qwen2.5-0.5b")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout.strip() == os.fsencode(cache / "models" / built.name).decode("utf-8", "replace")
    assert len(list((cache / "models" / "stamps").glob("*.json"))) == 1
    assert catalog.availability("qwen2.5-0.5b").reason == "ready"


@pytest.mark.parametrize("value", ["/tmp/a\\u0000b", "\\ud800"])
def test_a_router_config_ledger_no_file_system_takes_is_one_line(tmp_path, monkeypatch, value):
    """It was a traceback from the ledger's open; `tether stats` said "no requests yet"."""
    config = tmp_path / "router.json"
    config.write_text('{"ledger": "%s"}' % value)
    monkeypatch.setenv("TETHER_ROUTER_CONFIG", str(config))
    assert_one_line_error(tether("stats"), f"router config {config}: ledger:")
    assert_one_line_error(tether("reply", "--text", "Lunch on Friday?", *TINY), f"router config {config}: ledger:")


@pytest.mark.parametrize("module", ["tether.models.catalog", "tether.cli.chat"])
def test_ctrl_c_while_the_commands_load_is_one_line_and_exit_130(module):
    """A real SIGINT, sent as the entry point (`from tether.cli import main; main()`) imports the
    model catalog, or the command modules: the first second of every command. It printed a
    KeyboardInterrupt traceback (the catalog was imported by the package, before `main()` ran)."""
    import signal

    code = ("import os, signal, sys\n"
            "class Hook:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name == {module!r}:\n"
            "            os.kill(os.getpid(), signal.SIGINT)\n"
            "sys.meta_path.insert(0, Hook())\n"
            "sys.argv = ['tether', 'models', 'list']\n"
            "from tether.cli import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "interrupted\n" and proc.stdout == ""


def test_an_unusable_path_is_named_not_taken_for_an_output_error(tmp_path, monkeypatch):
    """A 300-character file name failed in an unguarded exists()/is_file() and the catch-all read
    every OSError as "cannot write the output (File name too long)"."""
    long = str(tmp_path / ("x" * 300))
    for proc in (tether("stats", "--ledger", long), tether("proofread", "--model", "smollm2-135m", "a " + "x" * 300),
                 tether("emoji", "-o", long + "/a.svg", "cat")):
        assert "cannot write the output" not in proc.stderr
    assert_one_line_error(tether("stats", "--ledger", long), f"cannot use --ledger {long}: File name too long")
    assert_one_line_error(tether("proofread", *TINY, "a " + "x" * 300), "no such file", "--text")
    assert_one_line_error(tether("emoji", "-o", long + "/a.svg", "cat"), "cannot write (File name too long)")
    monkeypatch.setenv("TETHER_LEDGER", long)
    assert_one_line_error(tether("stats"), f"{long}: cannot open the routing ledger (File name too long)")
    monkeypatch.setenv("TETHER_CACHE_DIR", long)
    assert_one_line_error(tether("models", "pull", "qwen2.5-0.5b"), f"cannot assemble it in {long}/models: File name too long")


def test_the_catch_all_names_the_path_of_an_oserror_and_keeps_output_errors_for_output():
    """Whatever OSError a command lets through: the file and the OS reason, not "cannot write the output"."""
    code = ("import os, sys, click\n"
            "from tether.cli import cli, main\n"
            "@cli.command('boom')\n"
            "def boom():\n"
            "    os.stat('/tmp/' + 'y' * 300)\n"
            "sys.argv = ['tether', 'boom']\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, "cannot use /tmp/yyy", "File name too long")
    assert "cannot write the output" not in proc.stderr


def test_misleading_messages_now_say_what_is_wrong(tmp_path, monkeypatch):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where the ledger's folder would go")
    monkeypatch.setenv("TETHER_LEDGER", str(blocker / "ledger.sqlite"))  # it said "(File exists)"
    assert_one_line_error(tether("reply", "--text", "Lunch on Friday?", *TINY), f"{blocker} is a file, not a folder")
    monkeypatch.delenv("TETHER_LEDGER")
    config = tmp_path / "p.txt"
    config.write_text("x")
    proc = tether("privacy", "scan", "--config", str(config), "-t", "hi")  # it named the file twice
    assert_one_line_error(proc, f"privacy config {config}: unknown format .txt")
    assert proc.stderr.count(str(config)) == 1 and "cannot parse" not in proc.stderr
    assert ".gguf" in " ".join(tether("serve", "--help").stdout.split())  # it said --model takes "a catalog name"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").write_text("a file where the models folder would go")
    monkeypatch.setenv("TETHER_CACHE_DIR", str(cache))
    assert_one_line_error(tether("models", "pull", "qwen2.5-0.5b"), f"{cache / 'models'} is a file, not a folder")


def test_summarize_reads_json_that_starts_with_a_byte_order_mark(tmp_path):
    """Notepad's UTF-8 starts with a BOM; it was refused with "Unexpected UTF-8 BOM"."""
    path = tmp_path / "n.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(
        [{"app": "Mail", "sender": "Bo", "body": "Lunch moved to 1pm.", "timestamp": "2026-11-26T10:00:00"}]).encode())
    proc = tether("summarize", str(path), *TINY, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stacks"][0]["app"] == "Mail"
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xef\xbb\xbf[\xff]")
    assert_one_line_error(tether("summarize", str(bad), *TINY), "not valid UTF-8 (byte 4)")
