"""Signing and verifying model directories with ECDSA P-256 keys.

Built on the ``model-signing`` library (sigstore bundle format, DSSE envelope
over an in-toto statement listing every file's SHA-256). The signature bundle
lives inside the model directory (``model.sig`` by default) and is excluded
from hashing with the *same* ignore list when signing and verifying. Git
metadata files are *not* ignored: every other file in the folder is covered,
so an added ``.gitignore`` invalidates the signature like any other file.

A signature says what was signed, not where it was published:
:func:`verify_identity` checks that the signed ``metadata.json`` names the model
and version a folder was fetched as; :func:`verify_published` does both.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.errors import UsageError, VerificationError
from mlops.runtime import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE

if TYPE_CHECKING:
    from mlops.core.store import ObjectStore

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE_NAME = "model.sig"


def default_key_paths(home: Path) -> tuple[Path, Path]:
    """Returns the default ``(private, public)`` key paths under an MLOps home.

    Args:
        home: The MLOps home folder (``$MLOPS_HOME``, default ``~/.mlops``).

    Returns:
        ``home/keys/signing-key.pem`` and ``home/keys/signing-key.pub.pem``.
    """
    keys = Path(home) / "keys"
    return keys / PRIVATE_KEY_FILE, keys / PUBLIC_KEY_FILE


def _write_new(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """Writes ``data`` to ``path`` created with ``mode`` from the start."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    if not overwrite:
        flags |= os.O_EXCL
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
    finally:
        if fd >= 0:
            os.close(fd)


def generate_keypair(private_path: Path, public_path: Path, *, overwrite: bool = False) -> None:
    """Generates an ECDSA P-256 key pair as unencrypted PEM files.

    The private key file is created with mode 0600 (never world-readable, not
    even briefly); the public key with 0644.

    Args:
        private_path: Where to write the PKCS#8 private key.
        public_path: Where to write the SubjectPublicKeyInfo public key.
        overwrite: Replace existing files instead of refusing.

    Raises:
        UsageError: A key file already exists and ``overwrite`` is False, or the
            two paths are the same.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.resolve() == public_path.resolve():
        raise UsageError("private and public key paths must differ")
    if not overwrite:
        existing = [str(p) for p in (private_path, public_path) if p.exists()]
        if existing:
            raise UsageError(f"refusing to overwrite existing key file(s): {', '.join(existing)}")
    for parent in {private_path.parent, public_path.parent}:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    try:
        _write_new(private_path, private_pem, 0o600, overwrite)
        _write_new(public_path, public_pem, 0o644, overwrite)
    except FileExistsError as exc:
        raise UsageError(f"refusing to overwrite existing key file: {exc.filename}") from exc
    logger.info("wrote signing key pair %s / %s", private_path, public_path)


def _hashing_config(signature_name: str) -> Any:
    """The hashing configuration shared by signing and verification."""
    from model_signing import hashing

    # Ignore paths are interpreted relative to the model directory.
    return hashing.Config().set_ignored_paths(paths=[signature_name], ignore_git_paths=False)


def _check_inputs(model_dir: Path, key: Path, key_kind: str, signature_name: str) -> None:
    """Refuses a signature name that is not a plain file name, a missing folder or key.

    Raises:
        UsageError: Naming the first problem found.
    """
    if signature_name in {"", ".", ".."} or Path(signature_name).name != signature_name:
        raise UsageError(f"signature name must be a plain file name, got {signature_name!r}")
    if not model_dir.is_dir():
        raise UsageError(f"model directory not found: {model_dir}")
    if not key.is_file():
        raise UsageError(f"{key_kind} key not found: {key}")


def sign_model_dir(
    model_dir: Path, private_key: Path, signature_name: str = DEFAULT_SIGNATURE_NAME
) -> Path:
    """Signs every file of a model directory, writing the bundle inside it.

    An existing signature file is replaced (it is excluded from hashing).

    Args:
        model_dir: The local model folder.
        private_key: PEM ECDSA private key (P-256).
        signature_name: File name of the bundle inside ``model_dir``.

    Returns:
        The path of the signature bundle.

    Raises:
        UsageError: The folder or key is missing or unusable.
    """
    from model_signing import signing

    model_dir, private_key = Path(model_dir), Path(private_key)
    _check_inputs(model_dir, private_key, "private", signature_name)
    sig_path = model_dir / signature_name
    try:
        config = signing.Config().use_elliptic_key_signer(private_key=private_key)
    except Exception as exc:  # wrong format, password-protected, unsupported curve
        raise UsageError(f"unusable private key {private_key}: {exc}") from exc
    try:
        config.set_hashing_config(_hashing_config(signature_name)).sign(model_dir, sig_path)
    except ValueError as exc:  # symlinks, special files
        raise UsageError(f"cannot sign {model_dir}: {exc}") from exc
    logger.info("signed %s -> %s", model_dir, sig_path)
    return sig_path


def _signed_statement(sig_path: Path) -> dict[str, Any]:
    """Decodes the in-toto statement from a bundle (no signature check here)."""
    bundle = json.loads(sig_path.read_text(encoding="utf-8"))
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    statement: dict[str, Any] = json.loads(payload)
    return statement


def _describe_mismatch(model_dir: Path, sig_path: Path, signature_name: str) -> str:
    """Explains which files differ from the signed manifest.

    Only called after the bundle's signature has been verified, so the statement
    read from it is authentic.
    """
    statement = _signed_statement(sig_path)
    expected = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    actual_manifest = _hashing_config(signature_name).hash(model_dir)
    actual = {rd.identifier: rd.digest.digest_hex for rd in actual_manifest.resource_descriptors()}
    added = sorted(set(actual) - set(expected))
    removed = sorted(set(expected) - set(actual))
    changed = sorted(n for n in set(actual) & set(expected) if actual[n] != expected[n])
    parts = []
    if changed:
        parts.append(f"file(s) changed since signing: {', '.join(changed)}")
    if added:
        parts.append(f"unsigned file(s) added: {', '.join(added)}")
    if removed:
        parts.append(f"signed file(s) missing: {', '.join(removed)}")
    return "; ".join(parts) or "model contents do not match the signature"


def verify_model_dir(
    model_dir: Path, public_key: Path, signature_name: str = DEFAULT_SIGNATURE_NAME
) -> None:
    """Verifies a model directory against its signature bundle.

    Checks, in order: the bundle exists and parses, it was made by the key
    matching ``public_key``, it was produced with the expected ignore list, and
    every file in the folder (except the bundle) matches the signed manifest —
    no file changed, added or removed.

    Args:
        model_dir: The local model folder.
        public_key: PEM ECDSA public key.
        signature_name: File name of the bundle inside ``model_dir``.

    Raises:
        UsageError: The folder or the public key file is missing or unusable.
        VerificationError: The model is not validly signed by that key; the
            message says why.
    """
    model_dir, public_key = Path(model_dir), Path(public_key)
    _check_inputs(model_dir, public_key, "public", signature_name)
    sig_path = model_dir / signature_name
    if not sig_path.is_file():
        raise VerificationError(
            f"missing signature: {signature_name} not found in {model_dir} (model is unsigned)"
        )
    config = _verifier_config(public_key, signature_name)
    _verify_bundle(config, model_dir, public_key, signature_name)
    # The bundle is authentic now; make sure it was produced with our ignore list
    # so that nothing but the bundle itself escaped hashing.
    _check_hashing_setup(sig_path, signature_name)
    logger.info("verified %s with %s", model_dir, public_key)


def _verifier_config(public_key: Path, signature_name: str) -> Any:
    """A ``model_signing`` verifier for ``public_key`` with the shared hashing setup.

    Raises:
        UsageError: The key file is not a usable ECDSA public key.
    """
    from model_signing import verifying

    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    except Exception as exc:  # wrong format or unsupported key type / curve
        raise UsageError(f"unusable public key {public_key}: {exc}") from exc
    config.set_hashing_config(_hashing_config(signature_name))
    return config


def _verify_bundle(config: Any, model_dir: Path, public_key: Path, signature_name: str) -> None:
    """Checks the bundle's signature and the folder's contents against it.

    Raises:
        VerificationError: Any failure, including a bundle that does not parse
            (fail closed: nothing escapes as an unexpected exception type).
    """
    from cryptography.exceptions import InvalidSignature

    sig_path = model_dir / signature_name
    captured = io.StringIO()
    try:
        # The library prints a warning for legacy bundles; keep stdout clean.
        with contextlib.redirect_stdout(captured):
            config.verify(model_dir, sig_path)
    except InvalidSignature as exc:
        raise VerificationError(
            f"invalid signature: {signature_name} was not signed by the key {public_key} "
            "or the bundle was tampered with"
        ) from exc
    except ValueError as exc:
        raise _rejection(str(exc), model_dir, public_key, signature_name) from exc
    except Exception as exc:  # malformed JSON / protobuf / base64 bundle
        raise VerificationError(
            f"malformed signature bundle {sig_path}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if captured.getvalue().strip():
            logger.warning("model_signing: %s", captured.getvalue().strip())


def _rejection(
    text: str, model_dir: Path, public_key: Path, signature_name: str
) -> VerificationError:
    """Turns ``model_signing``'s ``ValueError`` text into the reason the model is refused."""
    if text.startswith("Key mismatch"):
        return VerificationError(
            f"wrong key: {signature_name} was signed by a different key than {public_key}"
        )
    sig_path = model_dir / signature_name
    if text.startswith("Signature mismatch"):
        return VerificationError(
            f"model contents do not match the signature: "
            f"{_describe_mismatch(model_dir, sig_path, signature_name)}"
        )
    if "symlink" in text or "special file" in text:
        return VerificationError(f"model directory cannot be verified: {text}")
    return VerificationError(f"malformed signature bundle {sig_path}: {text}")


def _check_hashing_setup(sig_path: Path, signature_name: str) -> None:
    """Refuses an authentic bundle whose hashing excluded more than the bundle itself.

    Raises:
        VerificationError: The bundle was made with another method or ignore list.
    """
    serialization = _signed_statement(sig_path)["predicate"].get("serialization", {})
    ignored = sorted(serialization.get("ignore_paths", []))
    if serialization.get("method") != "files" or ignored != [signature_name]:
        raise VerificationError(
            f"signature uses an unexpected hashing setup (method={serialization.get('method')}, "
            f"ignored paths={ignored}); expected only {signature_name} to be excluded"
        )


def verify_identity(model_dir: Path, model_name: str, version: str) -> None:
    """Refuses a model directory whose signed ``metadata.json`` names another model or version.

    A signature proves *what* was signed, not *where* it was published: a signed
    version copied under another version name still verifies. Call this after
    :func:`verify_model_dir` (so the metadata read here is the signed one) with
    the name and version the folder was fetched as (``models/<name>/<version>/``).

    Args:
        model_dir: The local, already verified model folder.
        model_name: The model name it is published (or served) under.
        version: The version it is published (or served) under.

    Raises:
        VerificationError: ``metadata.json`` is missing, unreadable, records no
            name or version (fail closed: every model this project packages
            records both), or records others than the expected ones.
    """
    from mlops.model.packaging import METADATA_FILE

    path = Path(model_dir) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VerificationError(
            f"cannot confirm that {model_dir} is {model_name} {version}: "
            f"{METADATA_FILE} is missing or unreadable ({exc})"
        ) from exc
    recorded = metadata if isinstance(metadata, dict) else {}
    name, recorded_version = recorded.get("model_name"), recorded.get("version")
    if not isinstance(name, str) or not isinstance(recorded_version, str):
        raise VerificationError(
            f"cannot confirm that {model_dir} is {model_name} {version}: the signed "
            f"{METADATA_FILE} records no model_name and version"
        )
    if (name, recorded_version) != (model_name, version):
        raise VerificationError(
            f"signed {METADATA_FILE} says model {name!r} version {recorded_version!r}, "
            f"but it was published as model {model_name!r} version {version!r} "
            "(a signed version copied under another name?)"
        )


def verify_version_dir(
    model_dir: Path,
    public_key: Path,
    model_name: str,
    version: str,
    signature_name: str = DEFAULT_SIGNATURE_NAME,
) -> dict[str, Any]:
    """Verifies a fetched version: its signature, that it is the version it was fetched as, its release.

    The last step is the release policy (:func:`mlops.trust.evidence.check_release`):
    the signed ``release.json`` names this model and version, every gate passed,
    and the holdout accuracy meets the policy minimum.

    Raises:
        UsageError: The folder or the public key file is missing or unusable.
        VerificationError: See :func:`verify_model_dir`, :func:`verify_identity`
            and :func:`mlops.trust.evidence.check_release`.
    """
    from mlops.trust.evidence import check_release

    verify_model_dir(model_dir, public_key, signature_name)
    verify_identity(model_dir, model_name, version)
    # A signature says who signed; the signed evidence says the release passed every gate.
    return check_release(model_dir, model_name, version)


def verify_published(store: ObjectStore, model_uri: str, public_key: Path) -> dict[str, Any]:
    """Downloads a published version and verifies it, as serving does before loading.

    Checks the signature, then that the signed metadata names the model and
    version of the URI (``s3://<bucket>/models/<name>/<version>``).

    Raises:
        VerificationError: missing signature, wrong key, any changed, added or
            removed file, or metadata naming another model or version.
        StoreError: the version is not complete.
        UsageError: the URI is not a model URI.
    """
    import tempfile

    from mlops.model.registry import fetch_model, parse_model_uri

    _, model_name, version = parse_model_uri(model_uri)
    with tempfile.TemporaryDirectory() as work:
        model_dir = fetch_model(store, model_uri, Path(work))
        return verify_version_dir(model_dir, Path(public_key), model_name, version)
