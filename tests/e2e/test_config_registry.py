"""The config registry through the real binary: the import of the files
under config/ at start (and only of what changed, at a restart), `dagi
config push|get|history|diff|rollback|list`, the admin API under /v1/config
(its errors and its audit-free answers), and the current set in the KV
bucket after every change.  Each node gets its own copy of config/, so a
test may edit the files."""
import base64
import json
import os
import re
import shutil
import tempfile

from harness import embedded_nats_client, run_dagi, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = ["qwen3-8b", "qwen3-vl-8b", "qwen2.5-3b", "qwen2.5-coder-7b", "mistral-7b",
          "deepseek-chat"]
HELION_LINE = "You answer in the voice of a lighthouse keeper."


class Files:
    """A copy of the repo's config/ and a dagi.yml naming it."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="dagi-e2e-registry-")
        self.dir = os.path.join(self.tmp, "config")
        shutil.copytree(os.path.join(REPO, "config"), self.dir)
        models = "".join(f"""
    - id: {m}
      provider: openai
      base_url: http://127.0.0.1:9/v1
""" for m in MODELS)
        self.config = f"""
swapper:
  models:{models}
router:
  registry: {self.dir}/agent_registry.yml
  routing: {self.dir}/routing.yml
  prompts_dir: {self.dir}/prompts
"""

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def read(self, *parts):
        with open(self.path(*parts)) as f:
            return f.read()

    def write(self, text, *parts):
        with open(self.path(*parts), "w") as f:
            f.write(text)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def config(n, path="/v1/config"):
    r = n.get(path, headers=n.auth())
    assert r.status == 200, r
    return r.json()


def docs_by_name(listing):
    return {f"{d['kind']}/{d['name']}": d for d in listing["docs"]}


def cli(n, *args):
    return run_dagi("config", *args, "--data-dir", n.data_dir)


def kv_current(n):
    """The config set in the KV bucket, or None before the first publish."""
    c = embedded_nats_client(n)
    try:
        _, _, body = c.request("$JS.API.STREAM.MSG.GET.KV_dagi_config",
                               json.dumps({"last_by_subj": "$KV.dagi_config.current"}).encode())
    finally:
        c.close()
    doc = json.loads(body)
    if "message" not in doc:
        return None
    return json.loads(base64.b64decode(doc["message"]["data"]))


def start(ctx, files, tmp=None):
    return ctx.node(config=files.config, tmp=tmp)


def test_config_registry_import_push_history_diff_rollback(ctx):
    files = Files()
    try:
        n = start(ctx, files)
        # the files were imported at start, as revision 1
        listing = config(n)
        assert listing["revision"] == 1, listing
        docs = docs_by_name(listing)
        for name in ("agents/agent_registry.yml", "routing/routing.yml", "prompts/helion.md",
                     "prompts/druid.md"):
            assert docs[name]["version"] == 1, docs
            assert docs[name]["author"] == "config-import", docs
            assert re.fullmatch(r"[0-9a-f]{64}", docs[name]["checksum"]), docs
        assert len([d for d in docs if d.startswith("prompts/")]) == 13, docs
        assert "text" not in docs["prompts/helion.md"]
        original = files.read("prompts", "helion.md")
        r = n.get("/v1/config/prompts/helion.md", headers=n.auth())
        assert r.status == 200 and r.body.decode() == original, r
        assert r.headers["content-type"].startswith("text/markdown"), r.headers
        assert r.headers["etag"] == '"' + docs["prompts/helion.md"]["checksum"] + '"'
        rc, out, err = cli(n, "list")
        assert rc == 0, err
        assert out.startswith("revision 1\n") and "prompts/helion.md" in out, out

        # the current set is in the KV bucket, texts and all
        kv = wait_until(lambda: kv_current(n), 10, "the config set in the KV bucket")
        assert kv["revision"] == 1, kv
        texts = {f"{d['kind']}/{d['name']}": d["text"] for d in kv["docs"]}
        assert texts["prompts/helion.md"] == original

        # push a changed prompt through the CLI: version 2
        changed = original + "\n" + HELION_LINE + "\n"
        new_file = os.path.join(files.tmp, "helion-new.md")
        with open(new_file, "w") as f:
            f.write(changed)
        rc, out, err = cli(n, "push", "prompts/helion.md", new_file, "-m", "a sharper voice")
        assert rc == 0, err
        assert "prompts/helion.md: version 2 (revision 2)" in out, out
        r = n.get("/v1/config/prompts/helion.md", headers=n.auth())
        assert r.body.decode() == changed
        rc, out, err = cli(n, "get", "prompts/helion.md", "--version", "1")
        assert rc == 0 and out == original, err
        # ...and it reaches the bucket
        wait_until(lambda: (kv_current(n) or {}).get("revision") == 2, 10,
                   "revision 2 in the KV bucket")
        texts = {f"{d['kind']}/{d['name']}": d["text"] for d in kv_current(n)["docs"]}
        assert texts["prompts/helion.md"] == changed
        # the same text again: unchanged, no new version
        rc, out, err = cli(n, "push", "prompts/helion.md", new_file)
        assert rc == 0 and "unchanged, version 2" in out, (out, err)

        # history shows both, newest first; diff shows the line
        rc, out, err = cli(n, "history", "prompts/helion.md")
        assert rc == 0, err
        rows = [line.split() for line in out.splitlines()[1:]]
        assert [r[0] for r in rows] == ["2", "1"], out
        assert rows[0][2] == "push" and rows[0][4] == "admin" and "sharper" in out, out
        assert rows[1][2] == "import" and rows[1][4] == "config-import", out
        rc, out, err = cli(n, "diff", "prompts/helion.md")
        assert rc == 0, err
        assert "--- prompts/helion.md@1\n+++ prompts/helion.md@2\n" in out, out
        assert "\n+" + HELION_LINE + "\n" in out and "@@ -" in out, out
        rc, out2, err = cli(n, "diff", "prompts/helion.md", "1", "2")
        assert rc == 0 and out2 == out, err

        # rollback: version 3 with version 1's text
        rc, out, err = cli(n, "rollback", "prompts/helion.md")
        assert rc == 0, err
        assert "version 3 (revision 3), the text of version 1" in out, out
        r = n.get("/v1/config/prompts/helion.md", headers=n.auth())
        assert r.body.decode() == original and r.headers["x-dagi-version"] == "3"
        h = config(n, "/v1/config/prompts/helion.md/history")
        assert [v["version"] for v in h["versions"]] == [3, 2, 1], h
        assert h["versions"][0]["action"] == "rollback" and h["versions"][0]["restored"] == 1
        wait_until(lambda: (kv_current(n) or {}).get("revision") == 3, 10,
                   "revision 3 in the KV bucket")
        m = re.search(r'^config_revision(\{[^}]*\})? (\S+)$', n.get("/metrics").body.decode(),
                      re.M)
        assert m and float(m.group(2)) == 3, m
        assert n.stop() == 0  # a clean stop: a sanitized build reports leaks
    finally:
        files.close()


def test_config_registry_restart_imports_only_what_changed(ctx):
    files = Files()
    tmp = tempfile.mkdtemp(prefix="dagi-e2e-registry-node-")
    try:
        n = start(ctx, files, tmp=tmp)
        assert config(n)["revision"] == 1
        # a push through the API survives a restart with unchanged files
        r = n.request("PUT", "/v1/config/prompts/druid.md?comment=api", body=b"Druid, v2\n",
                      headers=n.auth())
        assert r.status == 200 and r.json()["version"] == 2, r
        assert n.stop() == 0

        # the same files: no new version
        n = start(ctx, files, tmp=tmp)
        listing = config(n)
        assert listing["revision"] == 2, listing
        docs = docs_by_name(listing)
        assert docs["prompts/druid.md"]["version"] == 2
        assert all(d["version"] == 1 for k, d in docs.items() if k != "prompts/druid.md"), docs
        assert n.stop() == 0

        # a file changed on disk: imported as a new version, the rest untouched
        files.write(files.read("routing.yml") + "# edited on disk\n", "routing.yml")
        n = start(ctx, files, tmp=tmp)
        listing = config(n)
        assert listing["revision"] == 3, listing
        docs = docs_by_name(listing)
        assert docs["routing/routing.yml"]["version"] == 2
        assert docs["routing/routing.yml"]["author"] == "config-import"
        assert docs["prompts/druid.md"]["version"] == 2
        h = config(n, "/v1/config/routing/routing.yml/history")
        assert h["versions"][0]["comment"] == "imported from " + files.path("routing.yml"), h
        r = n.get("/v1/config/routing/routing.yml", headers=n.auth())
        assert r.body.decode().endswith("# edited on disk\n")
        assert n.stop() == 0
    finally:
        files.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_config_registry_api_errors(ctx):
    files = Files()
    try:
        n = start(ctx, files)
        assert n.get("/v1/config").status == 401
        assert n.get("/v1/config/prompts/helion.md").status == 401
        r = n.get("/v1/config/agentz/agent_registry.yml", headers=n.auth())
        assert r.status == 404 and "kinds are" in r.json()["error"]["message"], r
        r = n.request("PUT", "/v1/config/agents/agents.yml", body=b"x", headers=n.auth())
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_name", r
        r = n.get("/v1/config/prompts/nope.md", headers=n.auth())
        assert r.status == 404, r
        r = n.get("/v1/config/prompts/helion.md?version=9", headers=n.auth())
        assert r.status == 404, r
        r = n.get("/v1/config/prompts/helion.md?version=x", headers=n.auth())
        assert r.status == 400, r
        r = n.request("PUT", "/v1/config/prompts/bad.md", body=b"\xff\xfe", headers=n.auth())
        assert r.status == 422 and r.json()["error"]["type"] == "invalid_document", r
        r = n.request("DELETE", "/v1/config/routing/routing.yml", headers=n.auth())
        assert r.status == 400, r
        r = n.post("/v1/config/prompts/nope.md/rollback", headers=n.auth())
        assert r.status == 404, r
        # a prompt no agent uses may be deleted; then it is gone
        r = n.request("PUT", "/v1/config/prompts/spare.md", body=b"spare\n", headers=n.auth())
        assert r.status == 200 and r.json()["version"] == 1, r
        r = n.request("DELETE", "/v1/config/prompts/spare.md", headers=n.auth())
        assert r.status == 200 and r.json()["deleted"] is True and r.json()["version"] == 2, r
        assert n.get("/v1/config/prompts/spare.md", headers=n.auth()).status == 404
        assert "prompts/spare.md" not in docs_by_name(config(n))
        r = n.request("DELETE", "/v1/config/prompts/spare.md", headers=n.auth())
        assert r.status == 404, r
        # usage errors of the command are exit 2
        assert cli(n, "push", "prompts/helion.md")[0] == 2
        assert cli(n, "get", "nokind/x")[0] == 2
        assert cli(n, "delete", "agents")[0] == 2
        rc, _, err = cli(n, "get", "prompts/nope.md")
        assert rc == 1 and "404" in err, err
        assert n.stop() == 0
    finally:
        files.close()


def test_config_registry_refuses_an_invalid_document(ctx):
    """Needs the real dagi_docset_validate (src/cplane/docset_validate.c)."""
    files = Files()
    try:
        n = start(ctx, files)
        before = files.read("agent_registry.yml")
        # an unknown key in the first agent, on line 38
        assert before.splitlines()[36] == "  - id: daarwizz", before.splitlines()[36]
        bad = before.replace("  - id: daarwizz\n", "  - id: daarwizz\n    no_such_key: 1\n", 1)
        bad_file = os.path.join(files.tmp, "bad.yml")
        with open(bad_file, "w") as f:
            f.write(bad)
        rc, out, err = cli(n, "push", "agents", bad_file)
        assert rc == 1, (out, err)
        assert re.search(r"^agents/agent_registry\.yml:38: .*no_such_key", err, re.M), err
        r = n.get("/v1/config/agents/agent_registry.yml", headers=n.auth())
        assert r.body.decode() == before and r.headers["x-dagi-version"] == "1"
        r = n.request("PUT", "/v1/config/agents/agent_registry.yml", body=bad.encode(),
                      headers=n.auth())
        assert r.status == 422, r
        e = r.json()["error"]
        assert e["type"] == "invalid_document", e
        assert {"document": "agents/agent_registry.yml", "line": 38} == {
            k: e["errors"][0][k] for k in ("document", "line")}, e
        assert config(n)["revision"] == 1
        # a prompt an agent uses cannot be deleted
        r = n.request("DELETE", "/v1/config/prompts/helion.md", headers=n.auth())
        assert r.status == 422, r
        assert n.get("/v1/config/prompts/helion.md", headers=n.auth()).status == 200
        assert n.stop() == 0
    finally:
        files.close()
