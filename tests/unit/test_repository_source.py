"""Recipe URIs, git refs pinned to commits, fetching and the tree digest, on real git and a real store.

The git repositories are made here with ``git init`` and commits; the ``https`` case
talks to a TLS server on 127.0.0.1 that records what git sends and answers 404.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops.core import settings
from mlops.core.errors import UsageError
from mlops.repository.source import (
    FetchedRepo,
    RepoSource,
    builtin_dir,
    fetch_repository,
    git_environment,
    parse_recipe_uri,
    resolve_source,
    tree_digest,
)


# -- real git repositories ---------------------------------------------------------------------
def git(*args: str, cwd: Path) -> str:
    identity = ["-c", "user.name=Recipe Author", "-c", "user.email=author@example.com"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(work: Path, files: dict[str, str], message: str) -> str:
    for relative, text in files.items():
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


@dataclass(frozen=True)
class Remote:
    """A bare repository: main c1 -> c2 -> c3, tag v1 (annotated) at c1, branch feature at f1."""

    url: str
    c1: str
    c2: str
    c3: str
    f1: str


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Remote:
    root = tmp_path_factory.mktemp("git")
    work = root / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    c1 = commit(work, {"mlops.yaml": "entry_point: train:fit\n", "train.py": "V = 1\n"}, "one")
    git("tag", "-a", "v1", "-m", "first release", cwd=work)
    git("branch", "feature", cwd=work)
    c2 = commit(work, {"train.py": "V = 2\n"}, "two")
    c3 = commit(work, {"train.py": "V = 3\n", "extra/notes.md": "n\n"}, "three")
    git("tag", "light", cwd=work)
    git("checkout", "-q", "feature", cwd=work)
    f1 = commit(work, {"feature.py": "F = 1\n"}, "feature")
    git("checkout", "-q", "main", cwd=work)
    bare = root / "recipe.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    return Remote(f"file://{bare}", c1, c2, c3, f1)


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri,expected,pinned",
    [
        ("recipes/churn", RepoSource("dir", "recipes/churn"), "recipes/churn"),
        ("file:///srv/recipe", RepoSource("dir", "file:///srv/recipe"), "file:///srv/recipe"),
        (
            "git+file:///srv/recipe.git@v1.2",
            RepoSource("git", "file:///srv/recipe.git", "v1.2"),
            "git+file:///srv/recipe.git@v1.2",
        ),
        (
            "git+https://git.example.com/org/recipe.git",
            RepoSource("git", "https://git.example.com/org/recipe.git", "HEAD"),
            "git+https://git.example.com/org/recipe.git@HEAD",
        ),
        (
            "git+https://git.example.com/org/recipe.git@refs/heads/release/2",
            RepoSource("git", "https://git.example.com/org/recipe.git", "refs/heads/release/2"),
            "git+https://git.example.com/org/recipe.git@refs/heads/release/2",
        ),
        ("s3://bucket/recipes/churn/", RepoSource("s3", "s3://bucket/recipes/churn/"), None),
        ("builtin:iris", RepoSource("builtin", "builtin:iris"), "builtin:iris"),
    ],
)
def test_recipe_uri_forms(uri, expected, pinned):
    source = parse_recipe_uri(uri)
    assert source == expected
    assert source.pinned_uri() == (uri if pinned is None else pinned)
    assert source.to_dict()["pinned_uri"] == source.pinned_uri()
    assert source.to_dict()["kind"] == expected.kind


@pytest.mark.parametrize(
    "uri",
    [
        "git+https://user:secret@github.com/org/repo.git@main",
        "git+https://ghp_token@github.com/org/repo.git",
        "https://user:pw@github.com/org/repo.git",
        "git+ssh://git:pw@github.com/org/repo.git",
        "s3://key:secret@bucket/recipes/",
        "file://user@host/srv/recipe",
    ],
)
def test_credentials_in_the_url_are_refused(uri):
    with pytest.raises(UsageError) as info:
        parse_recipe_uri(uri)
    assert str(info.value) == (
        f"credentials in the URL are not accepted; use {settings.GIT_TOKEN_VAR}"
    )


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("", "recipe URI is empty"),
        ("http://example.com/recipe", "(http) is not supported"),
        ("https://example.com/recipe.git", "(https) is not supported"),
        ("ftp://example.com/recipe", "(ftp) is not supported"),
        ("git@github.com:org/repo.git", "scp-style git address"),
        ("git+ssh://github.com/org/repo.git", "git scheme 'ssh' is not supported"),
        ("git+http://example.com/repo.git", "git scheme 'http' is not supported"),
        ("git+https:///repo.git", "names no host"),
        ("git+https://example.com/repo.git?token=x", "must not have a query or fragment"),
        ("git+file://server/share/repo.git", "file:// takes an absolute path"),
        ("git+file:///srv/repo.git@--upload-pack=evil", "is not a valid branch, tag or commit"),
        ("git+file:///srv/repo.git@a..b", "is not a valid branch"),
        ("git+file:///srv/repo.git@", "is not a valid branch"),
        ("git+file:///srv/repo.git@main.lock", "is not a valid branch"),
        ("s3://bucket", "must name a folder"),
        ("s3://bucket/", "must name a folder"),
        ("builtin:../etc", "builtin recipe name '../etc' is invalid"),
        ("builtin:", "builtin recipe name '' is invalid"),
        ("file://host/srv/recipe", "file:// takes an absolute path"),
    ],
)
def test_other_forms_are_refused(uri, expected):
    with pytest.raises(UsageError) as info:
        parse_recipe_uri(uri)
    assert expected in str(info.value)
    assert "token=x" not in str(info.value)


def test_a_builtin_recipe_is_copied_from_the_package(tmp_path):
    import mlops

    folder = builtin_dir("logistic_regression")
    assert folder == Path(mlops.__file__).parent / "recipes" / "logistic_regression"
    fetched = fetch_repository("builtin:logistic_regression", tmp_path / "recipe")
    assert fetched.source == RepoSource("builtin", "builtin:logistic_regression")
    assert (fetched.path / "mlops.yaml").is_file()
    assert fetched.tree_digest == tree_digest(folder)


def test_an_unknown_builtin_lists_the_known_ones():
    with pytest.raises(UsageError, match="no builtin recipe 'no-such-recipe'; builtin recipes:"):
        builtin_dir("no-such-recipe")
    with pytest.raises(UsageError, match="no builtin recipe"):
        resolve_source("builtin:no-such-recipe")


# -- resolving git refs ------------------------------------------------------------------------
def test_refs_resolve_to_full_commits(remote):
    cases = {
        "": remote.c3,
        "@HEAD": remote.c3,
        "@main": remote.c3,
        "@refs/heads/main": remote.c3,
        "@feature": remote.f1,
        "@v1": remote.c1,  # an annotated tag: the commit it points to, not the tag object
        "@refs/tags/v1": remote.c1,
        "@light": remote.c3,
        f"@{remote.c2}": remote.c2,  # a full SHA is taken as it is, checked at fetch
    }
    for suffix, expected in cases.items():
        source = resolve_source(f"git+{remote.url}{suffix}")
        assert (source.kind, source.url, source.commit) == ("git", remote.url, expected), suffix
        assert source.pinned_uri() == f"git+{remote.url}@{expected}"


def test_a_missing_ref_is_named_with_the_url(remote):
    with pytest.raises(UsageError) as info:
        resolve_source(f"git+{remote.url}@no-such-branch")
    assert str(info.value) == f"git ref no-such-branch not found in {remote.url}"
    with pytest.raises(UsageError, match="give a commit as its full SHA"):
        resolve_source(f"git+{remote.url}@{remote.c1[:8]}")


def test_a_name_that_is_a_branch_and_a_tag_is_ambiguous(tmp_path, remote):
    bare = Path(remote.url[len("file://") :])
    clone = tmp_path / "clone"
    git("clone", "-q", str(bare), str(clone), cwd=tmp_path)
    work = tmp_path / "dup.git"
    git("clone", "-q", "--bare", str(clone), str(work), cwd=tmp_path)
    git("branch", "dup", remote.c1, cwd=work)
    git("tag", "dup", remote.c2, cwd=work)
    with pytest.raises(UsageError, match="dup is both a branch and a tag .* refs/heads/dup or"):
        resolve_source(f"git+file://{work}@dup")
    assert resolve_source(f"git+file://{work}@refs/tags/dup").commit == remote.c2


def test_an_unreadable_repository_carries_gits_reason(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve_source(f"git+file://{tmp_path}/absent.git")
    assert "cannot read git repository" in str(info.value)
    assert "does not appear to be a git repository" in str(info.value)


def test_no_git_is_a_usage_error(tmp_path, monkeypatch, remote):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UsageError, match="git is not installed"):
        resolve_source(f"git+{remote.url}@main")


# -- fetching git ------------------------------------------------------------------------------
def test_fetch_checks_out_the_pinned_commit_without_git(tmp_path, remote):
    fetched = fetch_repository(f"git+{remote.url}@v1", tmp_path / "v1")
    assert isinstance(fetched, FetchedRepo)
    assert fetched.source.commit == remote.c1 and fetched.path == tmp_path / "v1"
    assert sorted(p.name for p in fetched.path.iterdir()) == ["mlops.yaml", "train.py"]
    assert (fetched.path / "train.py").read_text() == "V = 1\n"
    assert fetched.tree_digest == tree_digest(fetched.path)

    head = fetch_repository(f"git+{remote.url}", tmp_path / "head")
    assert head.source.commit == remote.c3
    assert (head.path / "extra" / "notes.md").is_file() and not (head.path / ".git").exists()
    assert head.tree_digest != fetched.tree_digest


def test_fetch_of_a_commit_no_ref_points_at(tmp_path, remote):
    fetched = fetch_repository(f"git+{remote.url}@{remote.c2}", tmp_path / "c2")
    assert (fetched.path / "train.py").read_text() == "V = 2\n"
    assert fetched.source.pinned_uri() == f"git+{remote.url}@{remote.c2}"


def test_fetch_falls_back_to_the_whole_history(tmp_path, remote, monkeypatch, caplog):
    # Protocol v0 without uploadpack.allowReachableSHA1InWant: the server refuses a
    # commit that is no ref's tip, so the shallow fetch fails and the full one runs.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.version")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "0")
    with caplog.at_level("INFO", logger="mlops.repository.source"):
        fetched = fetch_repository(f"git+{remote.url}@{remote.c2}", tmp_path / "c2")
    assert "refused; fetching all refs" in caplog.text
    assert (fetched.path / "train.py").read_text() == "V = 2\n"
    assert not (fetched.path / ".git").exists()


def test_a_commit_not_in_the_repository(tmp_path, remote):
    missing = "0123456789abcdef" * 2 + "01234567"
    dest = tmp_path / "missing"
    with pytest.raises(UsageError) as info:
        fetch_repository(f"git+{remote.url}@{missing}", dest)
    assert str(info.value) == f"git commit {missing} not found in {remote.url}"
    assert not dest.exists(), "a failed fetch leaves no half-filled folder"


def test_the_destination_must_be_empty(tmp_path, remote):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old.txt").write_text("x")
    with pytest.raises(UsageError, match="is not an empty folder"):
        fetch_repository(f"git+{remote.url}", dest)
    assert (dest / "old.txt").read_text() == "x"


# -- local folders and the digest --------------------------------------------------------------
def make_folder(root: Path) -> Path:
    files = {
        "mlops.yaml": "entry_point: recipe.train:fit\n",
        "recipe/__init__.py": "",
        "recipe/train.py": "def fit():\n    return 1\n",
        "data/notes.txt": "a\n",
        ".git/HEAD": "ref: refs/heads/main\n",
        "recipe/__pycache__/train.cpython-311.pyc": "junk",
        ".venv/pyvenv.cfg": "home = /usr\n",
        ".venv/lib/big.py": "x = 1\n",
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_folder_is_copied_without_git_caches_or_venvs(tmp_path):
    source = make_folder(tmp_path / "src")
    fetched = fetch_repository(str(source), tmp_path / "copy")
    copied = sorted(p.relative_to(fetched.path).as_posix() for p in fetched.path.rglob("*"))
    assert copied == [
        "data",
        "data/notes.txt",
        "mlops.yaml",
        "recipe",
        "recipe/__init__.py",
        "recipe/train.py",
    ]
    assert fetched.source == RepoSource("dir", str(source))
    # The source's digest is its copy's: what does not count is left out of both.
    assert fetched.tree_digest == tree_digest(source)
    by_uri = fetch_repository(f"file://{source}", tmp_path / "copy2")
    assert by_uri.tree_digest == fetched.tree_digest


def test_the_digest_follows_content_and_names_only(tmp_path):
    folder = make_folder(tmp_path / "src")
    first = tree_digest(folder)
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert tree_digest(folder) == first
    os.utime(folder / "recipe" / "train.py", (0, 0))
    (folder / "recipe" / "train.py").chmod(0o755)
    (folder / "empty-dir").mkdir()
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_text("y")
    assert tree_digest(folder) == first, "times, modes, empty and ignored folders do not count"

    (folder / "recipe" / "train.py").write_text("def fit():\n    return 2\n")
    changed = tree_digest(folder)
    assert changed != first
    (folder / "recipe" / "train.py").rename(folder / "recipe" / "fit.py")
    assert tree_digest(folder) not in (first, changed), "a rename changes the digest"


def test_the_digest_is_the_documented_sum(tmp_path):
    import hashlib

    (tmp_path / "b.txt").write_bytes(b"bee")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "c.txt").write_bytes(b"sea")
    entries = b"".join(
        name.encode() + b"\0" + hashlib.sha256(data).hexdigest().encode() + b"\n"
        for name, data in (("a/c.txt", b"sea"), ("b.txt", b"bee"))
    )
    assert tree_digest(tmp_path) == "sha256:" + hashlib.sha256(entries).hexdigest()


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    source = make_folder(tmp_path / "src")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not ship")
    (source / "recipe" / "leak.txt").symlink_to(secret)
    dest = tmp_path / "copy"
    with pytest.raises(UsageError, match="symlinks pointing outside it: recipe/leak.txt"):
        fetch_repository(str(source), dest)
    assert not dest.exists()


def test_a_symlink_inside_is_kept_as_a_link(tmp_path):
    source = make_folder(tmp_path / "src")
    (source / "current.py").symlink_to("recipe/train.py")
    fetched = fetch_repository(str(source), tmp_path / "copy")
    assert os.readlink(fetched.path / "current.py") == "recipe/train.py"
    assert fetched.tree_digest == tree_digest(source)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(UsageError, match="recipe folder .*nowhere does not exist"):
        fetch_repository(str(tmp_path / "nowhere"), tmp_path / "dest")


# -- the object store --------------------------------------------------------------------------
def test_an_s3_folder_is_downloaded(store_env, tmp_path):
    source = make_folder(tmp_path / "src")
    store_env.upload_dir(source, "recipes/churn")
    uri = store_env.uri("recipes/churn/")
    fetched = fetch_repository(uri, tmp_path / "dest")
    assert fetched.source == RepoSource("s3", uri) and fetched.source.pinned_uri() == uri
    assert (fetched.path / "recipe" / "train.py").is_file()
    assert not (fetched.path / ".git").exists() and not (fetched.path / ".venv").exists()
    assert fetched.tree_digest == tree_digest(source)


def test_an_empty_s3_prefix_is_a_usage_error(store_env, tmp_path):
    with pytest.raises(UsageError, match="no files under it"):
        fetch_repository(store_env.uri("recipes/none/"), tmp_path / "dest")


# -- the token ---------------------------------------------------------------------------------
def test_the_token_becomes_a_header_for_https_only():
    env = {settings.GIT_TOKEN_VAR: "s3cr3t", "GIT_DIR": "/elsewhere/.git"}
    https = git_environment("https://git.example.com/org/r.git", env)
    header = "Basic " + base64.b64encode(b"x-access-token:s3cr3t").decode()
    assert https["GIT_CONFIG_COUNT"] == "1"
    assert https["GIT_CONFIG_KEY_0"] == "http.https://git.example.com/.extraHeader"
    assert https["GIT_CONFIG_VALUE_0"] == f"Authorization: {header}"
    assert https["GIT_TERMINAL_PROMPT"] == "0" and https["GIT_ALLOW_PROTOCOL"] == "https"
    assert "GIT_DIR" not in https
    local = git_environment("file:///srv/r.git", env)
    assert "GIT_CONFIG_COUNT" not in local and local["GIT_ALLOW_PROTOCOL"] == "file"
    # Entries of the caller's own come first and stay.
    chained = git_environment(
        "https://h/r.git", {**env, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b"}
    )
    assert chained["GIT_CONFIG_COUNT"] == "2" and chained["GIT_CONFIG_KEY_0"] == "a.b"
    assert chained["GIT_CONFIG_KEY_1"] == "http.https://h/.extraHeader"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **dict(self.headers.items())})
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path) -> Iterator[tuple[str, Path, list[dict[str, str]]]]:
    """An HTTPS server on 127.0.0.1 with a throwaway certificate; yields (base URL, CA, requests)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_file, _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_reaches_the_server_as_a_header_and_never_a_message(tls_server, monkeypatch):
    base, ca, seen = tls_server
    token = "tok-" + "z" * 20
    monkeypatch.setenv(settings.GIT_TOKEN_VAR, token)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(ca))
    with pytest.raises(UsageError) as info:
        resolve_source(f"git+{base}/org/private.git@main")
    message = str(info.value)
    assert message.startswith(f"cannot read git repository {base}/org/private.git")
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert token not in message and basic not in message
    assert seen, "git reached the server"
    assert seen[0]["path"].startswith("/org/private.git/info/refs")
    assert {request.get("Authorization") for request in seen} == {f"Basic {basic}"}
