"""Where a model repository comes from, pinned to exact content, and fetching it.

A recipe URI is one of:

* a local folder: ``path/to/recipe`` or ``file:///abs/path``;
* git: ``git+file:///path/repo.git@REF`` or ``git+https://host/org/repo.git@REF``
  (``REF`` a branch, tag, ``refs/...`` name or full commit SHA; absent means ``HEAD``);
* ``s3://bucket/prefix/``: a folder in the object store;
* ``builtin:<name>``: a recipe shipped with the package (``mlops/recipes/<name>/``).

A git ref is resolved to its commit with ``git ls-remote`` and the fetch checks out
exactly that commit; the fetched folder keeps no ``.git``. Every fetched tree gets a
digest over its paths and contents (:func:`tree_digest`), so a run records what it
trained whatever the URI was.

Credentials never sit in a URI (it ends up in run records and logs): a private
``https`` repository is read with ``MLOPS_GIT_TOKEN``, handed to git as an HTTP header
through ``GIT_CONFIG_*`` environment variables, so it appears in no argument list.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlops.core import settings
from mlops.core.errors import MlopsError, UsageError, VerificationError
from mlops.repository.tree import is_ignored_dir, iter_entries, links_leaving

logger = logging.getLogger(__name__)

KINDS = ("dir", "git", "s3", "builtin")
#: How long resolving a ref and fetching a commit may take (seconds).
LS_REMOTE_TIMEOUT = 60.0
FETCH_TIMEOUT = 600.0
#: Lines of git's error output a message carries.
STDERR_LINES = 5
_FORMS = (
    "a folder path, file:///path, git+file:///path/repo.git@REF, "
    "git+https://host/org/repo.git@REF, s3://bucket/prefix/ or builtin:<name>"
)
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{4,39}$")
#: A conservative subset of git's ref-name rules; never starts with "-" (no option injection).
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+-]+$")
_BUILTIN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_SCP_LIKE = re.compile(r"^[^/:]+@[^/:]+:")
_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
)


@dataclass(frozen=True)
class RepoSource:
    """A parsed recipe URI.

    Attributes:
        kind: ``"dir"``, ``"git"``, ``"s3"`` or ``"builtin"``.
        url: git: the repository URL without ``git+`` and ref; otherwise the URI as given.
        ref: git: the ref asked for (``HEAD`` when none); otherwise empty.
        commit: git: the full commit SHA once resolved; otherwise empty.
    """

    kind: str
    url: str
    ref: str = ""
    commit: str = ""

    def pinned_uri(self) -> str:
        """The URI that names this exact content: git ``git+<url>@<commit>``, else the URI."""
        if self.kind == "git":
            return f"git+{self.url}@{self.commit or self.ref}"
        return self.url

    def to_dict(self) -> dict[str, str]:
        """The fields and the pinned URI, for run records."""
        return {
            "kind": self.kind,
            "url": self.url,
            "ref": self.ref,
            "commit": self.commit,
            "pinned_uri": self.pinned_uri(),
        }


@dataclass(frozen=True)
class FetchedRepo:
    """A repository fetched into a local folder.

    Attributes:
        source: Where it came from (git: resolved to its commit).
        path: The folder holding it (no ``.git``).
        tree_digest: :func:`tree_digest` of ``path``.
    """

    source: RepoSource
    path: Path
    tree_digest: str


# -- parsing -----------------------------------------------------------------------------------
def _refuse_credentials(uri: str) -> None:
    """A user or password in the authority part (``scheme://user:secret@host``) is refused."""
    address = uri[len("git+") :] if uri.startswith("git+") else uri
    if "://" in address and "@" in urlsplit(address).netloc:
        raise UsageError(f"credentials in the URL are not accepted; use {settings.GIT_TOKEN_VAR}")


def _check_ref(ref: str, uri: str) -> str:
    if not _REF.match(ref) or ref.endswith(("/", ".lock", ".")):
        raise UsageError(f"git ref {ref!r} in {uri!r} is not a valid branch, tag or commit name")
    return ref


def _parse_git(uri: str) -> RepoSource:
    address = uri[len("git+") :]
    parts = urlsplit(address)
    if parts.scheme not in ("file", "https"):
        raise UsageError(
            f"git scheme {parts.scheme!r} is not supported in {uri!r}: use git+https:// "
            f"({settings.GIT_TOKEN_VAR} for private repositories) or git+file://"
        )
    if parts.query or parts.fragment:
        # Not echoed whole: a query is where a token would hide.
        shown = f"git+{parts.scheme}://{parts.netloc}{parts.path}"
        raise UsageError(f"git URI {shown!r} must not have a query or fragment")
    if parts.scheme == "https" and not parts.hostname:
        raise UsageError(f"git URI {uri!r} names no host")
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise UsageError(f"git URI {uri!r}: file:// takes an absolute path (file:///path)")
    path, at, ref = parts.path.rpartition("@")
    if not at:
        path, ref = parts.path, "HEAD"
    if not path or path == "/":
        raise UsageError(f"git URI {uri!r} names no repository")
    url = f"{parts.scheme}://{parts.netloc}{path}"
    return RepoSource("git", url, _check_ref(ref, uri))


def parse_recipe_uri(uri: str) -> RepoSource:
    """Parses a recipe URI (see the module docstring for the forms).

    Nothing is read: git refs stay unresolved and folders unchecked.

    Raises:
        UsageError: an empty URI, an unsupported scheme, credentials in the URL, a bad
            git ref or builtin name.
    """
    uri = (uri or "").strip()
    if not uri:
        raise UsageError("recipe URI is empty")
    _refuse_credentials(uri)
    if uri.startswith("git+"):
        return _parse_git(uri)
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket or not prefix.strip("/"):
            raise UsageError(f"recipe URI {uri!r} must name a folder: s3://bucket/prefix/")
        return RepoSource("s3", uri)
    if uri.startswith("builtin:"):
        name = uri[len("builtin:") :]
        if not _BUILTIN.match(name):
            raise UsageError(
                f"builtin recipe name {name!r} is invalid (lowercase, digits, - and _)"
            )
        return RepoSource("builtin", uri)
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise UsageError(f"recipe URI {uri!r}: file:// takes an absolute path (file:///path)")
        return RepoSource("dir", uri)
    scheme = _SCHEME.match(uri)
    if scheme or _SCP_LIKE.match(uri):
        shown = scheme.group(1) if scheme else "scp-style git address"
        raise UsageError(f"recipe URI {uri!r} ({shown}) is not supported: use {_FORMS}")
    return RepoSource("dir", uri)


# -- local folders -----------------------------------------------------------------------------
def builtin_dir(name: str) -> Path:
    """The folder of the builtin recipe ``name`` (``mlops/recipes/<name>/``).

    Raises:
        UsageError: no such recipe (the message lists the ones there are).
    """
    import mlops

    recipes = Path(mlops.__file__).parent / "recipes"
    folder = recipes / name
    if not _BUILTIN.match(name) or not folder.is_dir():
        known = sorted(p.name for p in recipes.iterdir() if p.is_dir()) if recipes.is_dir() else []
        raise UsageError(
            f"no builtin recipe {name!r}; builtin recipes: {', '.join(known) or 'none'}"
        )
    return folder


def _local_dir(source: RepoSource) -> Path:
    if source.kind == "builtin":
        return builtin_dir(source.url[len("builtin:") :])
    if source.url.startswith("file://"):
        folder = Path(unquote(urlsplit(source.url).path))
    else:
        folder = Path(source.url).expanduser()
    if not folder.is_dir():
        raise UsageError(f"recipe folder {source.url} does not exist or is not a folder")
    return folder


def _copy_tree(source_dir: Path, dest: Path) -> None:
    """Copies what counts (:func:`iter_entries`), symlinks as symlinks."""
    for relative in list(iter_entries(source_dir)):
        origin, target = source_dir / relative, dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            os.symlink(os.readlink(origin), target)
        else:
            shutil.copy2(origin, target)


# -- git ---------------------------------------------------------------------------------------
def _auth_header(token: str) -> str:
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
    return f"Authorization: Basic {basic}"


def git_environment(url: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment git runs with for ``url``.

    No prompts, only the URL's own protocol (no ``ext::`` or other transports a
    repository could ask for), and for ``https`` URLs the token, when set, as an
    ``http.<origin>/.extraHeader`` config entry scoped to the URL's host.

    Args:
        url: The repository URL (``file://`` or ``https://``).
        env: The environment to start from (default: this process's).
    """
    base = dict(os.environ if env is None else env)
    # A caller's repository (e.g. when run from a git hook) must not stand in for ours.
    for inherited in _GIT_LOCATION_VARS:
        base.pop(inherited, None)
    base["GIT_TERMINAL_PROMPT"] = "0"
    scheme = urlsplit(url).scheme
    base["GIT_ALLOW_PROTOCOL"] = scheme
    token = settings.get(settings.GIT_TOKEN_VAR, base)
    if scheme == "https" and token:
        parts = urlsplit(url)
        count = int(base.get("GIT_CONFIG_COUNT") or 0)
        base[f"GIT_CONFIG_KEY_{count}"] = f"http.https://{parts.netloc}/.extraHeader"
        base[f"GIT_CONFIG_VALUE_{count}"] = _auth_header(token)
        base["GIT_CONFIG_COUNT"] = str(count + 1)
    return base


def _redact(text: str) -> str:
    token = settings.get(settings.GIT_TOKEN_VAR)
    if token:
        for secret in (token, _auth_header(token).split()[-1]):
            text = text.replace(secret, "***")
    return text


def _stderr_tail(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
    return _redact(" | ".join(lines[-STDERR_LINES:])) or f"git exited with {result.returncode}"


def _git(
    args: list[str], url: str, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``git args`` for ``url`` (no shell, no prompt, bounded time)."""
    logger.debug("git %s", " ".join(args))
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=git_environment(url),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError("git is not installed: it is needed for git+ recipe URIs") from None
    except subprocess.TimeoutExpired:
        raise MlopsError(f"git {args[0]} of {url} timed out after {timeout:g}s") from None


def _ls_remote(url: str, ref: str) -> str:
    """The commit ``ref`` names in ``url``."""
    patterns = [ref] if ref == "HEAD" else [ref, f"{ref}^{{}}"]
    result = _git(["ls-remote", "--", url, *patterns], url, LS_REMOTE_TIMEOUT)
    if result.returncode != 0:
        raise UsageError(f"cannot read git repository {url}: {_stderr_tail(result)}")
    refs = {}
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        refs[name.strip()] = sha.strip()
    if ref == "HEAD" or ref.startswith("refs/"):
        candidates = [ref]
    else:
        candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
    # An annotated tag's "^{}" line is the commit it points to.
    found = {name: refs.get(f"{name}^{{}}") or refs[name] for name in candidates if name in refs}
    if len(set(found.values())) > 1:
        raise UsageError(
            f"git ref {ref} is both a branch and a tag in {url}: "
            f"give refs/heads/{ref} or refs/tags/{ref}"
        )
    if not found:
        hint = " (give a commit as its full SHA)" if _SHORT_SHA.match(ref) else ""
        raise UsageError(f"git ref {ref} not found in {url}{hint}")
    return next(iter(found.values()))


def _git_fetch(source: RepoSource, dest: Path) -> None:
    """Checks out exactly ``source.commit`` into ``dest`` and removes ``.git``."""
    url, commit = source.url, source.commit
    # An empty template: no sample hooks or excludes in the scratch repository.
    init = _git(["init", "-q", "--template=", str(dest)], url, LS_REMOTE_TIMEOUT)
    if init.returncode != 0:
        raise MlopsError(f"git init in {dest} failed: {_stderr_tail(init)}")
    fetch = ["-C", str(dest), "fetch", "-q", "--no-tags"]
    shallow = _git([*fetch, "--depth", "1", "--", url, commit], url, FETCH_TIMEOUT)
    if shallow.returncode != 0:
        # Some servers refuse a commit that is no ref's tip; the whole history has it.
        logger.info("shallow fetch of %s from %s refused; fetching all refs", commit, url)
        refspecs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
        full = _git([*fetch, "--", url, *refspecs], url, FETCH_TIMEOUT)
        if full.returncode != 0:
            raise UsageError(f"cannot fetch git repository {url}: {_stderr_tail(full)}")
        present = _git(["-C", str(dest), "cat-file", "-e", f"{commit}^{{commit}}"], url, 60.0)
        if present.returncode != 0:
            raise UsageError(f"git commit {commit} not found in {url}")
    checkout = _git(
        ["-C", str(dest), "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit],
        url,
        FETCH_TIMEOUT,
    )
    if checkout.returncode != 0:
        raise UsageError(f"cannot check out {commit} of {url}: {_stderr_tail(checkout)}")
    head = _git(["-C", str(dest), "rev-parse", "HEAD"], url, 60.0).stdout.strip()
    if head != commit:
        raise VerificationError(
            f"git checkout of {url} at {source.ref} gave commit {head or '?'}, not {commit} "
            "(a tag object's SHA? give the commit's)"
        )
    shutil.rmtree(dest / ".git")


# -- s3 ----------------------------------------------------------------------------------------
def _download(uri: str, dest: Path) -> None:
    from mlops.core.store import ObjectStore

    store = ObjectStore.from_env()
    prefix = uri.rstrip("/") + "/"
    if not any(True for _ in store.list(prefix)):
        raise UsageError(f"recipe URI {uri}: no files under it in the object store")
    store.download_dir(prefix, dest)


# -- the public steps --------------------------------------------------------------------------
def resolve_source(uri: str) -> RepoSource:
    """Parses a recipe URI and pins a git ref to its commit.

    A full 40 (or 64) hex-digit ref is taken as the commit as it is; the fetch checks
    it exists. A local folder or builtin recipe is checked to exist.

    Raises:
        UsageError: see :func:`parse_recipe_uri`; a ref that is not in the repository,
            a repository git cannot read, a missing folder.
    """
    source = parse_recipe_uri(uri)
    if source.kind == "git":
        if _FULL_SHA.match(source.ref):
            source = replace(source, commit=source.ref)
        else:
            source = replace(source, commit=_ls_remote(source.url, source.ref))
            logger.info("resolved %s at %s to %s", source.url, source.ref, source.commit)
    elif source.kind in ("dir", "builtin"):
        _local_dir(source)
    return source


def _remove_ignored(root: Path) -> None:
    """Deletes version control, caches and venvs that came with a download or checkout."""
    for current, dirs, _ in os.walk(root, followlinks=False):
        for name in list(dirs):
            path = Path(current) / name
            if not path.is_symlink() and is_ignored_dir(path):
                shutil.rmtree(path)
                dirs.remove(name)


def fetch_repository(uri: str, dest: Path) -> FetchedRepo:
    """Fetches a model repository into ``dest``, pinned and without ``.git``.

    Args:
        uri: A recipe URI.
        dest: Folder to fill; created when missing, must be empty.

    Returns:
        The resolved source, the folder and its tree digest.

    Raises:
        UsageError: see :func:`resolve_source`; ``dest`` not empty; a symlink in the
            repository pointing outside it.
        VerificationError: git checked out another commit than the pinned one.
        MlopsError: git timed out.
    """
    source = resolve_source(uri)
    dest = Path(dest)
    created = not dest.exists()
    if not created and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"destination {dest} for the repository is not an empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if source.kind == "git":
            _git_fetch(source, dest)
        elif source.kind == "s3":
            _download(source.url, dest)
        else:
            _copy_tree(_local_dir(source), dest)
        _remove_ignored(dest)
        leaving = links_leaving(dest)
        if leaving:
            raise UsageError(
                f"repository {source.pinned_uri()} has symlinks pointing outside it: "
                + ", ".join(leaving)
            )
    except BaseException:
        # A half-filled folder must not pass for a repository later.
        shutil.rmtree(dest, ignore_errors=True)
        if not created:
            dest.mkdir()
        raise
    digest = tree_digest(dest)
    logger.info("fetched %s into %s (%s)", source.pinned_uri(), dest, digest)
    return FetchedRepo(source, dest, digest)


def tree_digest(path: Path) -> str:
    """``"sha256:<hex>"`` over a folder's files: paths and contents, nothing else.

    SHA-256 over the sorted entries ``<relative posix path> NUL <sha256 hex of the
    content> LF``; a symlink's content is its target text. Version control, caches
    and venvs (:data:`~mlops.repository.tree.IGNORED_DIRS`) do not count, and neither do
    file modes, times or empty folders.
    """
    root = Path(path)
    digest = hashlib.sha256()
    for relative in iter_entries(root):
        entry = root / relative
        if entry.is_symlink():
            content = hashlib.sha256(b"symlink\0" + os.fsencode(os.readlink(entry)))
        else:
            content = hashlib.sha256()
            with open(entry, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    content.update(block)
        digest.update(relative.as_posix().encode("utf-8") + b"\0")
        digest.update(content.hexdigest().encode("ascii") + b"\n")
    return "sha256:" + digest.hexdigest()
