"""BLIP-2 stage-1 scores on `Blip2ForImageTextRetrieval` modules: ITC vectors and the ITM head.

Each function mirrors one branch of `Blip2ForImageTextRetrieval.forward`, split so that image
vectors and text vectors are computed separately (vectors are stored; texts arrive later) and
so that the image side can start from a shared encoder output.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers import Blip2ForImageTextRetrieval


def compute_dtype(layer: torch.nn.Module) -> torch.dtype:
    """The dtype a Linear layer takes its input in, also when it is quantized."""
    weight = layer.weight
    if callable(weight):  # torch.ao dynamic-quantized Linear: float32 in and out
        return torch.float32
    return weight.dtype if weight.dtype.is_floating_point else torch.float16  # bitsandbytes int8


def _ones(hidden: torch.Tensor) -> torch.Tensor:
    return torch.ones(hidden.shape[:-1], dtype=torch.long, device=hidden.device)


def image_vectors(model: Blip2ForImageTextRetrieval, image_embeds: torch.Tensor) -> torch.Tensor:
    """(B, Q, D) L2-normalised: one projected vector per Q-Former query token.

    `image_embeds` is the vision output after this model's `post_layernorm`, (B, N, H_vision).
    """
    query = model.query_tokens.expand(image_embeds.shape[0], -1, -1)
    out = model.qformer(
        query_embeds=query, encoder_hidden_states=image_embeds, encoder_attention_mask=_ones(image_embeds)
    ).last_hidden_state  # (B, Q, H_qformer), kept in float32 by transformers
    out = out.to(compute_dtype(model.vision_projection))
    return F.normalize(model.vision_projection(out), dim=-1)


def text_vectors(
    model: Blip2ForImageTextRetrieval, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """(B, D) L2-normalised: the projected [CLS] vector of the Q-Former's text side."""
    embeds = model.embeddings(input_ids=input_ids)
    out = model.qformer(query_embeds=embeds, query_length=0, attention_mask=attention_mask).last_hidden_state
    cls = out[:, 0, :].to(compute_dtype(model.text_projection))  # (B, H_qformer): the first token
    return F.normalize(model.text_projection(cls), dim=-1)


def itc(image_vecs: torch.Tensor, text_vecs: torch.Tensor) -> torch.Tensor:
    """(B_img, B_text): cosine of each query vector with the text vector, max over queries."""
    sims = torch.einsum("iqd,td->iqt", image_vecs, text_vecs)  # (B_img, Q, B_text)
    return sims.max(dim=1).values


def match_probability(
    model: Blip2ForImageTextRetrieval,
    image_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """(B,): P(match) for image i with text i, from the ITM head's logits averaged over queries."""
    return match_logits(model, image_embeds, input_ids, attention_mask).float().softmax(dim=-1)[:, 1]


def match_logits(
    model: Blip2ForImageTextRetrieval,
    image_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """(B, 2): the ITM head's (no match, match) logits, averaged over the query tokens."""
    query = model.query_tokens.expand(image_embeds.shape[0], -1, -1)
    n_query = query.shape[1]
    embeds = model.embeddings(input_ids=input_ids, query_embeds=query)  # (B, Q + T, H)
    mask = torch.cat([_ones(query), attention_mask], dim=1)
    out = model.qformer(
        query_embeds=embeds,
        query_length=n_query,
        attention_mask=mask,
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=_ones(image_embeds),
    ).last_hidden_state
    return model.itm_head(out[:, :n_query, :].to(compute_dtype(model.itm_head))).mean(dim=1)
