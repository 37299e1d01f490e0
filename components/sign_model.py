"""KFP component: sign the model directory and verify the signature."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def sign_model(
    model: Input[Model],
    signed_model: Output[Model],
) -> NamedTuple("SignOutputs", [("passed", bool), ("gate", str)]):  # type: ignore[valid-type]
    """Signs the model directory (OpenSSF model signing) and verifies the result.

    The private key comes from ``MLOPS_SIGNING_KEY`` or, on a cluster, the
    ``mlops-signing-key`` Secret mounted at ``/etc/mlops/signing``.

    Args:
        model: Unsigned model directory.
        signed_model: The same files plus ``model.sig``.

    Returns:
        passed: Signature gate decision. gate: GateResult JSON.
    """
    import logging

    from mlops.release.gates import signature_gate

    logging.basicConfig(level=logging.INFO)
    gate = signature_gate(model.path, signed_model.path)
    signed_model.metadata.update(model.metadata)
    signed_model.metadata["signed"] = gate.passed
    return gate.passed, gate.to_json()
