"""The static trust gates over a data scientist's repository (issues 10 and 16).

Every repository here is a real folder in ``tmp_path`` checked by the real ruff,
bandit, pip-audit machinery (against the real advisory snapshot in ``../shared``)
and skops; nothing from a repository is imported or run, except the one module a
test itself imports to build a model with a custom class.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlops.core.errors import UsageError
from mlops.core.markdown import escape_markdown
from mlops.model import modelio
from mlops.release.gates import (
    repository_audit_gate,
    repository_model_scan_gate,
    repository_quality_gate,
    scan_gate,
)
from mlops.trust.requirements import check_servable, serving_pins
from tests.conftest import shared_path

SHELL_TRUE = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
CLEAN = "def add(a: int, b: int) -> int:\n    return a + b\n"


def _repo(root: Path, files: dict[str, str]) -> Path:
    """A repository folder with ``files`` (relative path -> text)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _py(repo: Path) -> list[Path]:
    return sorted(repo.rglob("*.py"))


# --- code quality ------------------------------------------------------------------


def test_bandit_high_finding_fails_and_names_the_file_from_the_repo_root(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"mlops.yaml": "entry_point: pkg.train:main\n"})
    _repo(repo, {"pkg/train.py": SHELL_TRUE, "pkg/__init__.py": ""})
    # Only files of pkg/ are checked: their common folder is pkg/, the repo root is not.
    gate, report = repository_quality_gate(repo, [repo / "pkg" / "train.py"], fail_on="medium")
    assert gate.name == "code_quality" and not gate.passed
    assert "pkg/train.py:5 bandit B602 (high)" in gate.detail, gate.detail
    assert "pkg/train.py\\:5" in report and "B602" in report and "FAILED" in report
    assert str(tmp_path) not in gate.detail + report


def test_clean_repository_passes(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"model/train.py": CLEAN, "model/__init__.py": ""})
    gate, report = repository_quality_gate(repo, _py(repo), fail_on="low")
    assert gate.passed, gate.detail
    assert "ruff: the project's rules" in gate.detail
    assert "PASSED" in report and "No findings." in report


def test_nosec_and_a_bandit_file_cannot_silence_the_repository_gate(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path / "repo",
        {
            "train.py": SHELL_TRUE.replace("shell=True)", "shell=True)  # nosec"),
            ".bandit": "[bandit]\nskips = B602,B404,B603\n",
        },
    )
    gate, _ = repository_quality_gate(repo, [repo], fail_on="high")  # a folder: bandit walks it
    assert not gate.passed
    assert "train.py:5 bandit B602 (high)" in gate.detail, gate.detail


def test_the_repositorys_ruff_config_selects_more_rules(tmp_path: Path) -> None:
    code = {"train.py": 'def main():\n    print("hello")\n'}
    plain = _repo(tmp_path / "plain", code)
    gate, _ = repository_quality_gate(plain, _py(plain), fail_on="low")
    assert gate.passed, gate.detail  # T201 is not in the project's rule set

    strict = _repo(tmp_path / "strict", {**code, "ruff.toml": '[lint]\nselect = ["T20"]\n'})
    gate, report = repository_quality_gate(strict, _py(strict), fail_on="low")
    assert not gate.passed
    assert "ruff: the repository's ruff.toml" in gate.detail
    assert "train.py:2 ruff T201 (low)" in gate.detail, gate.detail
    assert "T201" in report and "ruff.toml" in report


def test_the_repositorys_pyproject_ruff_table_can_ignore_a_rule(tmp_path: Path) -> None:
    code = {"train.py": "def main():\n    return undefined_thing\n"}
    plain = _repo(tmp_path / "plain", {**code, "pyproject.toml": "[project]\nname = 'x'\n"})
    gate, _ = repository_quality_gate(plain, _py(plain), fail_on="medium")
    assert not gate.passed and "ruff F821 (high)" in gate.detail  # no [tool.ruff]: our rules

    lenient = _repo(
        tmp_path / "lenient",
        {**code, "pyproject.toml": '[tool.ruff.lint]\nignore = ["F821"]\n'},
    )
    gate, _ = repository_quality_gate(lenient, _py(lenient), fail_on="medium")
    assert gate.passed, gate.detail
    assert "ruff: the repository's pyproject.toml" in gate.detail


def test_no_configuration_above_the_repository_leaks_in(tmp_path: Path) -> None:
    (tmp_path / "ruff.toml").write_text('[lint]\nselect = ["T20"]\n')  # the checkout's parent
    code = {"train.py": 'def main():\n    print("hello")\n'}
    bare = _repo(tmp_path / "bare", code)
    assert repository_quality_gate(bare, _py(bare), fail_on="low")[0].passed
    own = _repo(tmp_path / "own", {**code, ".ruff.toml": '[lint]\nselect = ["E"]\n'})
    gate, _ = repository_quality_gate(own, _py(own), fail_on="low")
    assert gate.passed and "the repository's .ruff.toml" in gate.detail, gate.detail


def test_exclude_patterns_cannot_hide_a_checked_file(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path / "repo",
        {
            "train.py": "def main():\n    return undefined_thing\n",
            "ruff.toml": 'exclude = ["*.py"]\nforce-exclude = true\n',
        },
    )
    gate, _ = repository_quality_gate(repo, _py(repo), fail_on="high")
    assert not gate.passed and "train.py:2 ruff F821 (high)" in gate.detail, gate.detail


def test_a_ruff_config_extending_a_file_outside_the_repository_fails(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.toml").write_text("[lint]\nignore = ['F']\n")
    repo = _repo(
        tmp_path / "repo", {"train.py": CLEAN, "ruff.toml": 'extend = "../elsewhere.toml"\n'}
    )
    gate, report = repository_quality_gate(repo, _py(repo))
    assert not gate.passed and "points outside the repository" in gate.detail
    assert "FAILED" in report


def test_a_ruff_config_linked_from_outside_the_repository_fails(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.toml").write_text("[lint]\nignore = ['F']\n")
    repo = _repo(tmp_path / "repo", {"train.py": CLEAN})
    (repo / "ruff.toml").symlink_to(tmp_path / "elsewhere.toml")
    gate, _ = repository_quality_gate(repo, _py(repo))
    assert not gate.passed and "ruff.toml is a link to a file outside" in gate.detail


def test_a_broken_ruff_config_fails_closed(tmp_path: Path) -> None:
    not_toml = _repo(tmp_path / "a", {"train.py": CLEAN, "ruff.toml": "[lint\n"})
    gate, _ = repository_quality_gate(not_toml, _py(not_toml))
    assert not gate.passed and "cannot read ruff.toml" in gate.detail
    unknown_key = _repo(tmp_path / "b", {"train.py": CLEAN, "ruff.toml": "no-such-setting = 1\n"})
    gate, _ = repository_quality_gate(unknown_key, _py(unknown_key))
    assert not gate.passed and "ruff failed to run" in gate.detail, gate.detail


def test_paths_outside_the_repository_and_bad_thresholds(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"train.py": CLEAN})
    outside = _repo(tmp_path / "other", {"x.py": CLEAN})
    gate, _ = repository_quality_gate(repo, [outside / "x.py"])
    assert not gate.passed and "outside" in gate.detail
    gate, _ = repository_quality_gate(repo, [])
    assert not gate.passed and "no paths" in gate.detail
    with pytest.raises(UsageError, match="fail_on"):
        repository_quality_gate(repo, _py(repo), fail_on="severe")


def test_a_hostile_file_name_cannot_inject_html_into_the_report(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {})
    hostile = repo / "x<img src=x onerror=alert(1)>.py"
    try:
        hostile.write_text(SHELL_TRUE)
    except OSError:
        pytest.skip("this filesystem refuses the file name")
    gate, report = repository_quality_gate(repo, [hostile], fail_on="medium")
    assert not gate.passed and "x<img src=x onerror=alert(1)>.py:5" in gate.detail  # plain JSON
    assert "<img" not in report and "onerror=alert(1)" not in report
    assert "x&lt;img src=x onerror=alert\\(1\\)&gt;.py\\:5" in report


def test_escape_markdown_neutralises_markdown_and_html() -> None:
    assert (
        escape_markdown("<script>alert(1)</script>") == "&lt;script&gt;alert\\(1\\)&lt;/script&gt;"
    )
    assert escape_markdown("a | b\n# c") == "a \\| b \\# c"
    assert escape_markdown("[x](javascript:alert(1))") == "\\[x\\]\\(javascript\\:alert\\(1\\)\\)"
    assert escape_markdown("- item") == "\\- item" and escape_markdown("1. item") == "1\\. item"
    assert escape_markdown("**bold** `code` ~~s~~ &amp;") == (
        "\\*\\*bold\\*\\* \\`code\\` \\~\\~s\\~\\~ &amp;amp;"
    )
    assert escape_markdown("PYSEC-2018-28 in pkg/app.py") == "PYSEC-2018-28 in pkg/app.py"


# --- requirements and the serving image --------------------------------------------


def _requirements(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(textwrap.dedent(text))
    return path


def test_check_servable_against_a_given_image(tmp_path: Path) -> None:
    served = {"demo": "1.2", "other-pkg": "3.0"}
    result = check_servable(
        _requirements(
            tmp_path,
            """\
            # a comment
            Demo>=1,<2
            other_pkg
            demo>=9
            missing-pkg==4.0
            win-only ; sys_platform == "no-such-platform"
            """,
        ),
        served,
    )
    assert result.checked == 4 and not result.servable
    assert result.unservable == (
        "requirement demo>=9 cannot be served: the serving image has demo==1.2",
        "missing-pkg is not in the serving image (requirement missing-pkg==4.0)",
    )
    assert result.pins == {"missing-pkg": "==4.0"} == result.unserved_pins
    assert result.skipped == ('win-only; sys_platform == "no-such-platform"',)
    assert check_servable(_requirements(tmp_path, "demo==1.2\nother-pkg~=3.0\n"), served).servable


def test_check_servable_rejects_what_it_cannot_check(tmp_path: Path) -> None:
    result = check_servable(
        _requirements(
            tmp_path,
            """\
            git+https://example.invalid/x/y.git#egg=y
            -e ./local
            foo @ https://example.invalid/foo.whl
            -r other.txt
            not a valid !!! line
            demo==1.0
            demo==2.0
            """,
        ),
        {"demo": "1.0"},
    )
    assert not result.servable
    text = "\n".join(result.problems)
    for line in (
        "git+https://example.invalid/x/y.git#egg=y",
        "-e ./local",
        "foo @ https://example.invalid/foo.whl",
        "-r other.txt",
        "not a valid !!! line",
        "demo is pinned twice",
    ):
        assert line in text, (line, text)
    with pytest.raises(UsageError, match="not found"):
        check_servable(tmp_path / "nope.txt", {})


def test_satisfiable_requirements_pass_the_audit(tmp_path: Path) -> None:
    database = shared_path("advisory-db")
    served = serving_pins()
    requirements = _requirements(
        tmp_path,
        f"""\
        numpy>={served["numpy"]}
        scikit-learn>=1.0,<99
        pandas
        skops=={served["skops"]}
        torch ; python_version < "3"
        """,
    )
    gate, report = repository_audit_gate(requirements, str(database))
    assert gate.name == "dependency_audit" and gate.passed, gate.detail
    assert "requirements.txt: 4 requirement(s) checked against the serving image" in gate.detail
    assert "1 skipped by their marker" in gate.detail
    assert "clean" in gate.detail and "PASSED" in report


def test_an_unsatisfiable_range_fails_naming_the_package(tmp_path: Path) -> None:
    database = shared_path("advisory-db")
    served = serving_pins()
    gate, report = repository_audit_gate(_requirements(tmp_path, "numpy>=999\n"), str(database))
    assert not gate.passed
    expected = (
        f"requirement numpy>=999 cannot be served: the serving image has numpy=={served['numpy']}"
    )
    assert expected in gate.detail
    assert "numpy&gt;=999 cannot be served" in report


def test_a_package_outside_the_serving_image_fails_naming_it(tmp_path: Path) -> None:
    database = shared_path("advisory-db")
    gate, _ = repository_audit_gate(
        _requirements(tmp_path, "definitely-not-served-pkg>=1.0\n"), str(database)
    )
    assert not gate.passed
    assert "definitely-not-served-pkg is not in the serving image" in gate.detail


def test_an_old_pin_with_an_advisory_fails_naming_the_advisory(tmp_path: Path) -> None:
    # scikit-learn is in the serving image; 0.23.0 has PYSEC-2020-107 in the snapshot.
    database = shared_path("advisory-db")
    assert "PYSEC-2020-107.yaml" in {
        p.name for p in (database / "vulns" / "scikit-learn").iterdir()
    }
    gate, report = repository_audit_gate(
        _requirements(tmp_path, "scikit-learn==0.23.0\n"), str(database)
    )
    assert not gate.passed
    assert "requirement scikit-learn==0.23.0 cannot be served" in gate.detail
    assert "scikit-learn==0.23.0 PYSEC-2020-107" in gate.detail
    assert "vulnerable" in gate.detail and "PYSEC-2020-107" in report


def test_url_and_editable_requirements_fail_naming_the_line(tmp_path: Path) -> None:
    database = shared_path("advisory-db")
    gate, report = repository_audit_gate(
        _requirements(tmp_path, "git+https://example.invalid/x/y.git#egg=y\n-e .\n"),
        str(database),
    )
    assert not gate.passed
    assert "git+https://example.invalid/x/y.git#egg=y (not a PyPI requirement" in gate.detail
    assert "-e . (not a PyPI requirement" in gate.detail
    assert "<" not in report.replace("&lt;", "")


def test_no_requirements_file_audits_the_serving_closure_alone() -> None:
    database = shared_path("advisory-db")
    gate, report = repository_audit_gate(None, str(database))
    assert gate.passed, gate.detail
    assert "no requirements file in the repository" in gate.detail
    assert f"no known vulnerabilities in {len(serving_pins())} package(s)" in gate.detail
    assert "PASSED" in report


def test_allow_unknown_never_lets_an_unservable_requirement_through(tmp_path: Path) -> None:
    # No advisory database: the audit cannot answer.
    unknown, _ = repository_audit_gate(_requirements(tmp_path, "pandas\n"))
    assert not unknown.passed and "unknown" in unknown.detail
    allowed, _ = repository_audit_gate(_requirements(tmp_path, "pandas\n"), allow_unknown=True)
    assert allowed.passed and allowed.detail.startswith("WARNING allowed unknown")
    refused, _ = repository_audit_gate(_requirements(tmp_path, "numpy>=999\n"), allow_unknown=True)
    assert not refused.passed and "numpy>=999 cannot be served" in refused.detail


def test_a_missing_requirements_file_or_database_fails(tmp_path: Path) -> None:
    gate, _ = repository_audit_gate(tmp_path / "nope.txt", "")
    assert not gate.passed and "requirements file not found" in gate.detail
    gate, _ = repository_audit_gate(None, str(tmp_path / "no-db"))
    assert not gate.passed and "advisory database not found" in gate.detail


# --- checked-in model --------------------------------------------------------------


class _Evil:
    """Pickles to a call of ``os.system`` (never unpickled by these tests)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def _fitted_logistic() -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])


@pytest.fixture
def custom_step_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A transformer class from a module that exists only in ``tmp_path`` (a repo's own code)."""
    name = "repo_custom_step"
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / f"{name}.py").write_text(
        textwrap.dedent(
            """\
            from sklearn.base import BaseEstimator, TransformerMixin


            class Doubler(TransformerMixin, BaseEstimator):
                def fit(self, X, y=None):
                    return self

                def transform(self, X):
                    return X * 2
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mod"))
    monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def _custom_pipeline(module: object) -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline([("double", module.Doubler()), ("clf", LogisticRegression())])  # type: ignore[attr-defined]
    return pipeline.fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])


def test_the_repository_scan_is_one_of_the_static_gates() -> None:
    from mlops.release.decision import STATIC_GATES
    from mlops.release.gates import REPOSITORY_SCAN_GATE

    assert REPOSITORY_SCAN_GATE in STATIC_GATES


def test_no_checked_in_model_passes() -> None:
    gate, report = repository_model_scan_gate(None)
    assert gate.name == "repository_scan" and gate.passed
    assert "no checked-in model" in gate.detail and "PASSED" in report


def test_a_clean_skops_model_passes(tmp_path: Path) -> None:
    modelio.save_model(_fitted_logistic(), tmp_path / "model.skops")
    gate, _ = repository_model_scan_gate(tmp_path / "model.skops")
    assert gate.passed, gate.detail


def test_a_pickle_renamed_skops_fails(tmp_path: Path) -> None:
    model = tmp_path / "model.skops"
    model.write_bytes(pickle.dumps(_Evil()))
    gate, report = repository_model_scan_gate(model)
    assert not gate.passed
    assert "model.skops: pickle/joblib data, not a skops archive" in gate.detail, gate.detail
    assert "FAILED" in report


def test_a_model_that_is_not_skops_fails(tmp_path: Path) -> None:
    import joblib

    joblib_file = tmp_path / "model.joblib"
    joblib.dump(_fitted_logistic(), joblib_file)
    gate, _ = repository_model_scan_gate(joblib_file)
    assert not gate.passed
    assert "only .skops models are accepted, not model.joblib" in gate.detail
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07not really onnx")
    gate, _ = repository_model_scan_gate(onnx)
    assert not gate.passed and "only .skops models are accepted" in gate.detail
    gate, _ = repository_model_scan_gate(tmp_path / "absent.skops")
    assert not gate.passed and "not a file" in gate.detail


def test_a_skops_model_with_an_untrusted_type_fails_naming_it(
    tmp_path: Path, custom_step_module: object
) -> None:
    model = tmp_path / "model.skops"
    modelio.save_model(_custom_pipeline(custom_step_module), model)
    gate, report = repository_model_scan_gate(model)
    assert not gate.passed
    assert "types outside the allow-list: repo_custom_step.Doubler" in gate.detail, gate.detail
    assert "repo\\_custom\\_step.Doubler" in report


def test_scan_gate_names_untrusted_types_of_a_trained_model(
    tmp_path: Path, custom_step_module: object
) -> None:
    model_dir = tmp_path / "model"
    modelio.save_model(_custom_pipeline(custom_step_module), model_dir / "model.skops")
    gate, _ = scan_gate(model_dir)
    assert not gate.passed
    assert gate.detail.startswith("unsafe: model.skops: types outside the allow-list")
    assert "repo_custom_step.Doubler" in gate.detail
    assert str(tmp_path) not in gate.detail
