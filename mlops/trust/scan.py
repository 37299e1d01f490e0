"""Static safety scan of serialized model files — nothing is ever unpickled.

* Pickle-like files (``.pkl``, ``.pickle``, ``.joblib``, and any file whose
  first bytes are a pickle protocol header, possibly zlib / gzip / bz2 / xz /
  lzma compressed as joblib does) are decompressed in memory (size-capped) and
  disassembled with fickling's static analysis. Any fickling finding above
  "likely safe", any stream that cannot be fully parsed, and any trailing data
  make the file unsafe (fail closed).
* ``.skops`` files must be a zip holding only ``schema.json``-style JSON and
  ``.npy`` members with non-object dtypes, and every type skops would need to
  trust must be on :mod:`mlops.model.modelio`'s allow-list.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.errors import UsageError

if TYPE_CHECKING:
    from fickling.fickle import Pickled

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES: frozenset[str] = frozenset({".pkl", ".pickle", ".joblib"})
SKOPS_SUFFIX = ".skops"

#: Upper bound on the decompressed size of one file (decompression-bomb guard).
MAX_DECOMPRESSED_BYTES = 2 * 1024**3

_HEAD_BYTES = 16
#: Bytes read from a file without a pickle extension to sniff a (compressed) pickle.
_SNIFF_BYTES = 64 * 1024

# fickling severity name -> our severity label
_SEVERITY = {
    "POSSIBLY_UNSAFE": "medium",
    "SUSPICIOUS": "medium",
    "LIKELY_UNSAFE": "high",
    "LIKELY_OVERTLY_MALICIOUS": "critical",
    "OVERTLY_MALICIOUS": "critical",
}


@dataclass
class ScanResult:
    """Outcome of :func:`scan_path`.

    Attributes:
        safe: True when no finding was raised for any scanned file.
        findings: One dict per problem: ``file``, ``severity`` (``medium``,
            ``high``, ``critical``) and ``detail``.
        scanned: Paths of the files that were analysed.
    """

    safe: bool
    findings: list[dict[str, str]] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict."""
        return {
            "safe": self.safe,
            "findings": [dict(f) for f in self.findings],
            "scanned": list(self.scanned),
        }


def _is_pickle_header(head: bytes) -> bool:
    """Protocol 2+ pickles start with PROTO (0x80) and a protocol number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _compression(head: bytes) -> str | None:
    """Names the compression format announced by the first bytes, if any."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:3] == b"BZh":
        return "bz2"
    if head[:3] == b"]\x00\x00":
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


def _decompressor(kind: str) -> Any:
    """A streaming decompressor for ``kind`` (all share ``decompress``/``eof``/``unused_data``)."""
    import bz2
    import lzma
    import zlib

    if kind in ("zlib", "gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | (16 if kind == "gzip" else 0))
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind in ("xz", "lzma"):
        return lzma.LZMADecompressor()
    raise ValueError(f"unsupported compression {kind}")


def _decompress(data: bytes, kind: str, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompresses ``data`` without letting the output exceed ``limit`` bytes.

    Raises:
        ValueError: Corrupt or truncated stream, or output above ``limit``.
    """
    import lzma
    import zlib

    dobj = _decompressor(kind)
    try:
        out: bytes = dobj.decompress(data, limit + 1)
    except (zlib.error, lzma.LZMAError, OSError, EOFError) as exc:
        raise ValueError(f"corrupt {kind} stream: {exc}") from exc
    if len(out) > limit:
        raise ValueError(f"decompressed size exceeds {limit} bytes")
    if not dobj.eof:
        raise ValueError(f"truncated {kind} stream")
    if dobj.unused_data:
        raise ValueError(f"{len(dobj.unused_data)} bytes after the {kind} stream")
    return out


def _finding(path: Path, severity: str, detail: str) -> dict[str, str]:
    return {"file": str(path), "severity": severity, "detail": detail}


def _analyse_pickle_bytes(path: Path, data: bytes) -> list[dict[str, str]]:
    """Runs fickling over every pickle in ``data``; never unpickles.

    Pickles are read one after another (joblib writes several); the first one
    that cannot be read, or whose stream is broken, ends the analysis with a
    finding, so nothing after it goes unexamined silently.
    """
    findings: list[dict[str, str]] = []
    stream = io.BytesIO(data)
    index = 0
    while stream.tell() < len(data):
        label = f"pickle #{index} at offset {stream.tell()}"
        pickled = _load_next_pickle(stream, len(data), label)
        if isinstance(pickled, str):  # no pickle could be read here
            findings.append(_finding(path, "high", pickled))
            break
        found, stop = _check_pickle(path, label, pickled)
        findings.extend(found)
        if stop:
            break
        index += 1
    if not data:
        findings.append(_finding(path, "high", "empty file with a pickle extension"))
    return findings


def _load_next_pickle(stream: io.BytesIO, size: int, label: str) -> Pickled | str:
    """Disassembles the pickle at the stream's position (fickling, no unpickling).

    Returns:
        The disassembled pickle, or why none could be read there.
    """
    from fickling.fickle import EmptyPickleError, Pickled

    start = stream.tell()
    try:
        pickled = Pickled.load(stream, fail_on_decode_error=False)
    except EmptyPickleError:
        return f"{size - start} bytes of non-pickle data at offset {start}"
    except Exception as exc:
        return f"{label}: cannot be parsed: {exc}"
    if len(pickled) == 0 or stream.tell() <= start:
        return f"{label}: cannot be parsed"
    return pickled


def _check_pickle(path: Path, label: str, pickled: Pickled) -> tuple[list[dict[str, str]], bool]:
    """Runs fickling's safety analysis on one disassembled pickle.

    Returns:
        The findings, and whether to stop reading (the stream is broken past this point).
    """
    from fickling.analysis import Severity, check_safety

    findings: list[dict[str, str]] = []
    if pickled.has_invalid_opcode:
        findings.append(
            _finding(path, "high", f"{label}: invalid opcode / unparsable stream (fail closed)")
        )
    try:
        results = check_safety(pickled)
    except Exception as exc:
        findings.append(_finding(path, "high", f"{label}: static analysis failed: {exc}"))
        return findings, True
    findings += [
        _finding(
            path,
            _SEVERITY.get(result.severity.name, "high"),
            f"{label}: {result.severity.name}: {result}",
        )
        for result in results.results
        if result.severity > Severity.LIKELY_SAFE
    ]
    return findings, bool(pickled.has_invalid_opcode)


def _scan_pickle(path: Path, data: bytes) -> list[dict[str, str]]:
    kind = _compression(data[:_HEAD_BYTES])
    if kind is not None:
        try:
            data = _decompress(data, kind)
        except ValueError as exc:
            return [
                _finding(path, "high", f"cannot decompress ({exc}); not analysed (fail closed)")
            ]
        logger.debug("%s: %s-compressed, %d bytes decompressed", path, kind, len(data))
    return _analyse_pickle_bytes(path, data)


def _check_npy_member(zf: Any, name: str) -> str | None:
    """Returns a problem description when a ``.npy`` member could hold pickles."""
    import numpy as np

    with zf.open(name) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                _, _, dtype = np.lib.format.read_array_header_2_0(fh)
        except Exception as exc:
            return f"{name}: not a valid .npy member: {exc}"
    if dtype.hasobject:
        return f"{name}: object dtype array (would need pickle)"
    return None


def _scan_skops(path: Path) -> list[dict[str, str]]:
    import zipfile

    from mlops.core.errors import VerificationError
    from mlops.model.modelio import untrusted_types

    findings: list[dict[str, str]] = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "schema.json" not in names:
                findings.append(_finding(path, "high", "no schema.json: not a skops archive"))
            for name in names:
                if name.endswith(".json"):
                    continue
                if name.endswith(".npy"):
                    problem = _check_npy_member(zf, name)
                    if problem:
                        findings.append(_finding(path, "high", problem))
                    continue
                findings.append(
                    _finding(
                        path,
                        "high",
                        f"unexpected archive member {name!r} (only JSON and .npy allowed)",
                    )
                )
    except (zipfile.BadZipFile, OSError) as exc:
        return [_finding(path, "high", f"not a zip archive: {exc}")]
    try:
        _, refused = untrusted_types(path)
    except (VerificationError, UsageError) as exc:
        findings.append(_finding(path, "high", str(exc)))
    else:
        if refused:
            findings.append(
                _finding(path, "high", f"types outside the allow-list: {', '.join(refused)}")
            )
    return findings


def _pickle_posing_as_skops(path: Path) -> list[dict[str, str]] | None:
    """Findings for a ``.skops`` file that is really a (compressed) pickle, else None.

    Renaming ``model.joblib`` to ``model.skops`` must not be reported as a mere
    "not a zip": the file would run code if anything unpickled it, so say so and
    analyse it as the pickle it is.
    """
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            return None
        with path.open("rb") as fh:
            data = fh.read(_SNIFF_BYTES)
            if not _looks_like_pickle(data):
                return None
            data += fh.read()
    except OSError as exc:
        return [_finding(path, "high", f"cannot read: {exc}")]
    return [
        _finding(
            path, "high", "pickle/joblib data, not a skops archive (pickles run code on load)"
        ),
        *_scan_pickle(path, data),
    ]


def _iter_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def scan_path(path: Path) -> ScanResult:
    """Statically scans a file or a directory tree for unsafe serialized objects.

    Args:
        path: A file, or a directory scanned recursively (symlinked
            directories are not followed).

    Returns:
        The scan result; ``safe`` is False as soon as any finding exists.

    Raises:
        UsageError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"path not found: {path}")
    findings: list[dict[str, str]] = []
    scanned: list[str] = []
    for file in _iter_files(path):
        suffix = file.suffix.lower()
        if file.is_symlink() and not file.exists():
            continue
        if suffix == SKOPS_SUFFIX:
            scanned.append(str(file))
            pickled = _pickle_posing_as_skops(file)
            findings.extend(pickled if pickled is not None else _scan_skops(file))
            continue
        # One read per file: sniff the start, and read the rest only for candidates.
        candidate = suffix in PICKLE_SUFFIXES
        try:
            with file.open("rb") as fh:
                data = fh.read(_SNIFF_BYTES)
                candidate = candidate or _looks_like_pickle(data)
                if candidate:
                    data += fh.read()
        except OSError as exc:
            if candidate:
                scanned.append(str(file))
                findings.append(_finding(file, "high", f"cannot read: {exc}"))
            continue
        if candidate:
            scanned.append(str(file))
            findings.extend(_scan_pickle(file, data))
    for f in findings:
        logger.warning("unsafe: %s [%s] %s", f["file"], f["severity"], f["detail"])
    return ScanResult(safe=not findings, findings=findings, scanned=scanned)


def _looks_like_pickle(chunk: bytes) -> bool:
    """Sniffs the start of a file without a pickle extension for a raw or compressed pickle."""
    if _is_pickle_header(chunk):
        return True
    kind = _compression(chunk[:_HEAD_BYTES])
    if kind is None:
        return False
    # Decompress just enough to see the first bytes of the payload.
    try:
        return _is_pickle_header(_peek_decompressed(chunk, kind))
    except Exception:  # not actually compressed data: not a pickle candidate
        return False


def _peek_decompressed(chunk: bytes, kind: str) -> bytes:
    """The first decompressed bytes of ``chunk`` (enough to sniff a pickle header)."""
    return bytes(_decompressor(kind).decompress(chunk, _HEAD_BYTES))
