"""Zero-shot variant-effect scores: the log-likelihood ratio of the alternative allele against the reference.

For each VCF record, a ``window`` of the reference genome centred on the variant is read from the FASTA:

- causal LMs (HyenaDNA, GENERator, the attention LM, RAMba): score = log p(alt window) − log p(ref window), the
  summed next-token log-probabilities of the two windows (which differ at the variant only);
- masked LMs (Caduceus, LC-PLM's BiMamba): the variant's position is masked and score = log p(alt) − log p(ref)
  there (the masked marginal, as the Caduceus paper scores variants).

Single-nucleotide variants only, as both papers evaluate. A REF allele that disagrees with the FASTA, an unknown
chromosome or a position past its end is reported by its record (``chrom:pos``) and not scored; nothing else is
skipped. Labels come from ``INFO/CLNSIG`` (benign / likely benign → 0, pathogenic / likely pathogenic → 1) or an
INFO ``label=0|1`` field; records without either are scored but not used for the AUROC.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

BENIGN = {"benign", "likely_benign", "benign/likely_benign"}
PATHOGENIC = {"pathogenic", "likely_pathogenic", "pathogenic/likely_pathogenic"}


class VcfFormatError(ValueError):
    """A VCF line that cannot be read; the message names the file and line."""


@dataclass
class Variant:
    chrom: str
    pos: int  # 1-based, as in the VCF
    ref: str
    alt: str
    label: int | None
    where: str  # file:line

    @property
    def name(self) -> str:
        return f"{self.chrom}:{self.pos}:{self.ref}>{self.alt}"


def read_vcf(path: str | Path) -> list[Variant]:
    """Every record of a VCF (plain or gzip); multi-allelic records give one variant per ALT allele."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out: list[Variant] = []
    with opener(path, "rt") as f:
        for i, line in enumerate(f, 1):
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            where = f"{path}:{i}"
            if len(fields) < 5:
                raise VcfFormatError(f"{where}: expected at least 5 tab-separated fields (CHROM POS ID REF ALT), "
                                     f"found {len(fields)}")
            chrom, pos, _, ref, alts = fields[:5]
            if not pos.isdigit() or int(pos) < 1:
                raise VcfFormatError(f"{where}: POS {pos!r} is not a 1-based position")
            entries = (fields[7] if len(fields) > 7 else "").split(";")
            info = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in entries if kv)
            label = _label(info, where)
            for alt in alts.split(","):
                out.append(Variant(chrom, int(pos), ref.upper(), alt.upper(), label, where))
    return out


def _label(info: dict, where: str) -> int | None:
    if "label" in info:
        if info["label"] not in ("0", "1"):
            raise VcfFormatError(f"{where}: INFO label={info['label']!r} is not 0 or 1")
        return int(info["label"])
    sig = info.get("CLNSIG", "").lower()
    if sig in BENIGN:
        return 0
    if sig in PATHOGENIC:
        return 1
    return None


def windows(variant: Variant, genome, window: int) -> tuple[str, str, int] | str:
    """(ref window, alt window, index of the variant in them), or the reason it cannot be scored."""
    if len(variant.ref) != 1 or len(variant.alt) != 1 or variant.alt not in "ACGT":
        return f"not a single-nucleotide variant ({variant.ref}>{variant.alt})"
    if variant.chrom not in genome:
        return f"chromosome {variant.chrom!r} is not in the FASTA"
    record = genome[variant.chrom]
    if variant.pos > len(record):
        return f"position {variant.pos} is past the end of {variant.chrom} ({len(record)} bases)"
    start = max(0, variant.pos - 1 - window // 2)
    end = min(len(record), start + window)
    start = max(0, end - window)
    seq = str(record[start:end]).upper()
    index = variant.pos - 1 - start
    if seq[index] != variant.ref:
        return f"REF {variant.ref} disagrees with the FASTA's {seq[index]} at {variant.chrom}:{variant.pos}"
    return seq, seq[:index] + variant.alt + seq[index + 1:], index


def causal_log_likelihood(model, ids: torch.Tensor) -> torch.Tensor:
    """(B, L) ids → (B,) summed log p(token t | tokens < t) over t ≥ 1, accumulated in float64: the score is a
    small difference of two sums of ~L terms, which float32 would blur by ~1e-3 at L = 64."""
    logp = F.log_softmax(model(ids).logits[:, :-1].double(), -1)
    return logp.gather(-1, ids[:, 1:, None])[..., 0].sum(1)


def score_variant(model, tokenizer, ref: str, alt: str, index: int, masked: bool) -> float:
    """The log-likelihood ratio of ``alt`` against ``ref`` (windows of equal length, differing at ``index``)."""
    ref_ids = torch.tensor([tokenizer.encode(ref, add_special_tokens=False)])
    alt_ids = torch.tensor([tokenizer.encode(alt, add_special_tokens=False)])
    with torch.no_grad():
        if not masked:
            ll = causal_log_likelihood(model, torch.cat((ref_ids, alt_ids)))
            return float(ll[1] - ll[0])
        ids = ref_ids.clone()
        ids[0, index] = tokenizer.mask_token_id
        logp = F.log_softmax(model(ids).logits[0, index].float(), -1)
        return float(logp[alt_ids[0, index]] - logp[ref_ids[0, index]])


def score_variants(model, tokenizer, variants: list[Variant], genome, window: int, masked: bool,
                   progress=None) -> tuple[list[dict], list[dict]]:
    """(scored rows, refused rows): every variant appears in exactly one of them, in VCF order."""
    scored, refused = [], []
    for v in variants:
        w = windows(v, genome, window)
        if isinstance(w, str):
            refused.append({"variant": v.name, "where": v.where, "reason": w})
        else:
            scored.append({"variant": v.name, "label": v.label, "score": score_variant(model, tokenizer, *w, masked)})
        if progress is not None:
            progress.update(1)
    return scored, refused


def auroc_of(scored: list[dict]) -> float | None:
    """AUROC of the labelled variants, pathogenic as positives, scored by −LLR (a damaging allele is less likely)."""
    from zoo.metrics import binary_auroc

    rows = [r for r in scored if r["label"] is not None and math.isfinite(r["score"])]
    labels = [r["label"] for r in rows]
    if not rows or len(set(labels)) < 2:
        return None
    return binary_auroc(labels, [-r["score"] for r in rows])
