"""Configuration errors: exit code 2 and `file:line: key: reason`."""
import os
import shutil
import re
import tempfile

from harness import run_dagi

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check(text, env=None):
    d = tempfile.mkdtemp(prefix="dagi-cfg-")
    path = os.path.join(d, "dagi.yml")
    with open(path, "w") as f:
        f.write(text)
    rc, out, err = run_dagi("config", "check", path, env=env)
    return rc, out, err, path


def test_sample_config_is_valid(ctx):
    rc, out, err = run_dagi("config", "check", os.path.join(REPO, "config", "dagi.yml"))
    assert rc == 0, err
    # dagi.yml and every document it names: the registry, 13 prompts, the
    # routing rules, the policy, the budgets.
    assert ": ok (" in out and "documents)" in out, out


def test_check_covers_the_documents_the_config_names(ctx):
    d = tempfile.mkdtemp(prefix="dagi-e2e-check-")
    try:
        with open(os.path.join(REPO, "config", "agent_registry.yml")) as f:
            reg = f.read().replace("file: helion.md", "file: missing.md", 1)
        with open(os.path.join(d, "reg.yml"), "w") as f:
            f.write(reg)
        with open(os.path.join(REPO, "config", "dagi.yml")) as f:
            sample = f.read().replace("config/", f"{REPO}/config/")
        cfg = os.path.join(d, "dagi.yml")
        with open(cfg, "w") as f:
            f.write(sample.replace(f"{REPO}/config/agent_registry.yml", f"{d}/reg.yml"))
        rc, out, err = run_dagi("config", "check", cfg)
        assert rc == 2, (rc, out, err)
        assert 'agents/agent_registry.yml: agents[' in err and "missing.md" in err, err
    finally:
        shutil.rmtree(d)


def test_unknown_key(ctx):
    rc, _, err, path = check("http:\n  listen: 127.0.0.1:8080\n  lisen: 1\n")
    assert rc == 2
    assert f"{path}:3: http.lisen: unknown key" in err, err


def test_wrong_type(ctx):
    rc, _, err, path = check("node:\n  name: a\nhttp:\n  max_connections: many\n")
    assert rc == 2
    assert re.search(re.escape(f"{path}:4: http.max_connections: ") + r".*integer", err), err


def test_out_of_bounds(ctx):
    rc, _, err, path = check("http:\n  max_connections: 0\n")
    assert rc == 2
    assert f"{path}:2: http.max_connections: " in err and "between" in err, err


def test_bad_record_inside_a_list(ctx):
    rc, _, err, path = check(
        "http:\n  limits:\n    - prefix: /v1/attachments\n      max_body: 100MB\n"
        "    - prefix: /v1/other\n      max_body: huge\n")
    assert rc == 2
    assert f"{path}:6: http.limits[1].max_body: " in err, err


def test_record_check_in_a_list(ctx):
    rc, _, err, path = check("http:\n  limits:\n    - prefix: nope\n      max_body: 1MB\n")
    assert rc == 2
    assert f"{path}:3: http.limits[0].prefix: must start with /" in err, err


def test_bad_enum_and_several_errors_at_once(ctx):
    rc, _, err, path = check("log:\n  level: loud\nhttp:\n  read_timeout: 5 parsecs\n")
    assert rc == 2
    assert f"{path}:2: log.level: " in err and "debug" in err, err
    assert f"{path}:4: http.read_timeout: " in err, err


def test_yaml_syntax_error(ctx):
    rc, _, err, path = check("http:\n  listen: [unclosed\n")
    assert rc == 2
    assert err.startswith(f"{path}:"), err


def test_node_refuses_bad_config_with_exit_2(ctx):
    n = ctx.node(config="http:\n  bogus: 1\n", start=False)
    n.start(wait_ready=False)
    assert n.wait(10) == 2
    assert f"{n.config_path}:2: http.bogus: unknown key" in n.stderr_text()


def test_bad_environment_override_exit_2(ctx):
    n = ctx.node(env={"DAGI_HTTP_READ_TIMEOUT": "soon"}, start=False)
    n.start(wait_ready=False)
    assert n.wait(10) == 2
    assert "DAGI_HTTP_READ_TIMEOUT" in n.stderr_text()


def test_environment_override_applies(ctx):
    n = ctx.node(env={"DAGI_HTTP_MAX_BODY": "100"})
    r = n.post("/v1/admin/reload", {"x": "y" * 200}, headers=n.auth())
    assert r.status == 413


def test_docs_match_the_schema(ctx):
    rc, out, err = run_dagi("config", "docs")
    assert rc == 0, err
    with open(os.path.join(REPO, "docs", "CONFIGURATION.md")) as f:
        assert f.read() == out, "docs/CONFIGURATION.md is stale: run `make docs`"


def test_config_keys_lists_env_names(ctx):
    rc, out, _ = run_dagi("config", "keys")
    assert rc == 0
    assert "http.read_timeout" in out and "DAGI_HTTP_READ_TIMEOUT" in out
