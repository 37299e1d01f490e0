"""KFP component: write the release evidence into the released model and sign it."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def sign_model(
    model: Input[Model],
    gates: str,
    signed_model: Output[Model],
    evidence: Output[Markdown],
    holdout_fingerprint: str = "",
    max_regression: float = 0.0,
    run_id: str = "",
    serving_image: str = "",
    trigger: str = "",
) -> str:
    """Writes ``release.json`` (every gate, metrics, thresholds, repository, data) and signs the folder.

    Runs only after the release decision passed, so no rejected candidate is ever
    signed; the signature (OpenSSF model signing) covers the evidence with the
    model files. The private key comes from ``MLOPS_SIGNING_KEY`` or, on a
    cluster, the ``mlops-signing-key`` Secret mounted at ``/etc/mlops/signing``.

    Args:
        model: The released candidate's model directory.
        gates: Decision JSON from ``decide_release`` (every gate passed).
        signed_model: The same files plus ``release.json`` and ``model.sig``.
        evidence: The release evidence as Markdown for the Kubeflow UI.
        holdout_fingerprint: Fingerprint of the holdout the gates scored.
        max_regression: The champion gate's allowance (recorded as a threshold).
        run_id: The pipeline run (recorded).
        serving_image: The predictor image the release is deployed with (recorded).
        trigger: JSON of why the run happened (recorded: reasons, data windows).

    Returns:
        The evidence JSON.
    """
    import json
    import logging

    from mlops.release.evidence import candidate_evidence, evidence_markdown, sign_release

    logging.basicConfig(level=logging.INFO)
    record = candidate_evidence(
        model.path,
        gates,
        holdout_fingerprint=holdout_fingerprint,
        max_regression=max_regression,
        run_id=run_id,
        serving_image=serving_image,
        trigger=trigger,
    )
    sign_release(model.path, signed_model.path, record)
    signed_model.metadata.update(model.metadata)
    signed_model.metadata["signed"] = True
    with open(evidence.path, "w") as handle:
        handle.write(evidence_markdown(record))
    return json.dumps(record, sort_keys=True)
