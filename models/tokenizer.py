"""Word-level tokenizers built locally with the `tokenizers` library (no hub).

Tiny models in tests and the generated world use a closed vocabulary: one token per word,
lower-cased, punctuation split off. The special tokens cover the image placeholders of every
family (LLaVA's `<image>`, Qwen2-VL's vision markers).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
IMAGE = "<image>"
QWEN_SPECIALS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
# EOS is not id 2: CLIP's text model treats eos id 2 as a legacy marker and pools elsewhere.
SPECIALS = (PAD, UNK, BOS, EOS, IMAGE, *QWEN_SPECIALS)
# Words every prompt template needs, whatever the caller's vocabulary.
TEMPLATE_WORDS = ("user", "assistant", ":", "?", ".", ",", "'", "!", "-")


def build_word_tokenizer(
    words: Iterable[str], extra_special: Iterable[str] = (), wrap: bool = False
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `words`; `wrap` adds <s> ... </s> around every text (CLIP).

    Each entry of `words` is split the way texts will be (lower case, punctuation apart), so
    an entry may be a word with punctuation ("o'neil") or a whole sentence. Ids follow the
    order of first appearance: specials, template words, then `words`.
    """
    specials = list(dict.fromkeys([*SPECIALS, *extra_special]))
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(specials)}
    normalizer = normalizers.Lowercase()
    pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    for entry in [*TEMPLATE_WORDS, *words]:
        for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(entry)):
            vocab.setdefault(piece, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.normalizer = normalizer
    core.pre_tokenizer = pre_tokenizer
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    if wrap:
        core.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=specials[4:],
        padding_side="right",
    )
    tok.image_token = IMAGE
    return tok
