"""§2 of the rules: which vLLM scheme a config group gets on a GPU (first matching row wins), and its min capability.

`choose_scheme` walks `rules.SCHEME_ROWS` top to bottom like vLLM's `_get_scheme_from_parts`, applies the
capability check of `get_scheme` (and the silent FP8 W8A8 → W8A16 fallback below capability 89), and words a
refusal the way vLLM raises it, with a hint at the row the group almost matched.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubpub.vllm import rules
from hubpub.vllm.config import ConfigGroup, QuantArgs
from hubpub.vllm.findings import VLLM

SCHEME_ORDER = list(dict.fromkeys(row.scheme for row in rules.SCHEME_ROWS))


def _activation_fits(rule: rules.ActivationRule, args: QuantArgs | None) -> bool:
    if rule.presence in ("ignored", "optional"):
        return True
    if rule.presence == "absent":
        return args is None
    return args is not None and any(args.fits(pattern) for pattern in rule.patterns)


def row_fits(
    row: rules.SchemeRow,
    group: ConfigGroup,
    capability: int | None,
    *,
    check_format: bool = True,
    check_capability: bool = True,
) -> bool:
    if group.weights is None:
        return False
    if check_capability and row.exact_capability is not None and capability != row.exact_capability:
        return False
    if check_format and row.formats is not None and group.format not in row.formats:
        return False
    return (
        group.weights.fits(row.weights)
        and _activation_fits(row.input_activations, group.input_activations)
        and _activation_fits(row.output_activations, group.output_activations)
    )


def row_named(scheme: str) -> rules.SchemeRow:
    return next(row for row in rules.SCHEME_ROWS if row.scheme == scheme)


@dataclass(frozen=True)
class SchemeChoice:
    row: rules.SchemeRow | None  # the row whose tensors vLLM loads (after a silent fallback)
    refusal: str | None  # worded with a `{layer}` placeholder
    notes: tuple[str, ...] = ()


def choose_scheme(group: ConfigGroup, capability: int | None) -> SchemeChoice:
    """The scheme vLLM builds for `group` at `capability` (None: a CPU, where every minimum is met)."""
    for row in rules.SCHEME_ROWS:
        if not row_fits(row, group, capability):
            continue
        inputs = group.input_activations
        if (
            row.mismatched_input_error
            and inputs is not None
            and not any(inputs.fits(pattern) for pattern in row.input_activations.patterns)
        ):
            return SchemeChoice(
                row,
                f"{{layer}}: ValueError in {row.scheme}: {row.mismatched_input_error}; config group"
                f" {group.name!r} has input activations {inputs.describe()}",
            )
        return _capable_row(row, capability)
    return SchemeChoice(None, _no_scheme_message(group, capability))


def _capable_row(row: rules.SchemeRow, capability: int | None) -> SchemeChoice:
    """The matched row on this GPU: its fallback below its min capability, or vLLM's capability refusal."""
    notes: list[str] = []
    chosen = row
    if capability is None:
        return SchemeChoice(chosen, None)
    if capability < row.min_capability and row.below_min_capability_becomes:
        chosen = row_named(row.below_min_capability_becomes)
        if row.below_min_capability_note:
            notes.append(row.below_min_capability_note)
    if capability < chosen.min_capability:
        return SchemeChoice(
            chosen,
            f"{{layer}}: {rules.ERROR_MIN_CAPABILITY}. Min capability: {chosen.min_capability}. Current"
            f" capability: {capability}. ({chosen.scheme}, {chosen.label}: use a newer GPU or another scheme)",
            tuple(notes),
        )
    if row.native_capability is not None and capability < row.native_capability and row.below_native_note:
        notes.append(row.below_native_note)
    if row.note:
        notes.append(f"{row.scheme}: {row.note}")
    if row.humming_only:
        notes.append(
            f"{row.scheme} runs only on the Humming kernels (the humming-kernels package {VLLM} depends on):"
            " the least-tested path"
        )
    return SchemeChoice(chosen, None, tuple(notes))


def _no_scheme_message(group: ConfigGroup, capability: int | None) -> str:
    hints: list[str] = []
    if group.format == rules.MIXED_PRECISION_FORMAT:
        hints.append("the top-level format is mixed-precision, so every config group needs its own format")
    for row in rules.SCHEME_ROWS:
        if row_fits(row, group, capability, check_format=False) and row.formats is not None:
            wanted = " or ".join(repr(name) for name in sorted(row.formats))
            hints.append(f"{row.label} ({row.scheme}) needs format {wanted}: re-save with that quantization_format")
            break
        if row_fits(row, group, capability, check_capability=False) and row.exact_capability is not None:
            hints.append(f"{row.label} ({row.scheme}) runs only on capability {row.exact_capability} (Hopper)")
            break
    if not hints:
        hints.append("re-quantize with a scheme vLLM supports (W4A16/W8A16 pack-quantized, W8A8 INT8, FP8, NVFP4)")
    return (
        f"{rules.ERROR_NO_SCHEME} for layer_name={{layer}}: config group"
        f" {group.name!r} ({group.describe()}) fits no {VLLM} scheme; {'; '.join(hints)}"
    )
