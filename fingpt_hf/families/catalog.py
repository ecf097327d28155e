"""The registered model families.

Targets follow FinGPT's ``lora_module_dict`` (FinGPT_Benchmark/utils.py: attention projections
only) except where FinGPT's choice trains nothing: Baichuan fuses q/k/v into ``W_pack``, so
FinGPT's ``q_proj/k_proj/v_proj`` match no module there. Module names were checked against each
family's modeling code (tests/test_families.py builds the native ones and cites the remote ones).
"""

from __future__ import annotations

from fingpt_hf.families.spec import ALL_LINEAR_TARGETS, FamilySpec

_QKV = ("q_proj", "k_proj", "v_proj")

FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec(
        name="llama",
        model_types=("llama", "internlm3"),
        architectures=("LlamaForCausalLM",),
        lora_target_modules=_QKV,
        fingpt_lora_target_modules=_QKV,
        # Llama-3.1+ reserve a pad token; Llama-2 has none but <unk> (id 0) is the usual choice.
        pad_token_candidates=("<|finetune_right_pad_id|>", "<pad>", "<unk>"),
        notes="Llama-2/3, SmolLM2, InternLM3 (LlamaForCausalLM). No pad token in Llama-2/3.",
        examples=("meta-llama/Llama-2-7b-hf", "HuggingFaceTB/SmolLM2-135M-Instruct", "internlm/internlm3-8b-instruct"),
    ),
    FamilySpec(
        name="mistral",
        model_types=("mistral",),
        architectures=("MistralForCausalLM",),
        lora_target_modules=_QKV,
        pad_token_candidates=("<pad>", "<unk>"),
        notes="Same projection names as Llama.",
        examples=("mistralai/Mistral-7B-v0.1",),
    ),
    FamilySpec(
        name="qwen2",
        model_types=("qwen2",),
        architectures=("Qwen2ForCausalLM",),
        lora_target_modules=_QKV,
        pad_token_candidates=("<|endoftext|>",),
        notes="Qwen1.5/Qwen2/Qwen2.5; q/k/v have biases (peft handles them).",
        examples=("Qwen/Qwen2.5-0.5B-Instruct",),
    ),
    FamilySpec(
        name="qwen3",
        model_types=("qwen3",),
        architectures=("Qwen3ForCausalLM",),
        lora_target_modules=_QKV,
        pad_token_candidates=("<|endoftext|>",),
        prompt_style="chat",
        notes="Qwen3 checkpoints are hybrid-thinking chat models: prompt them through the chat template.",
        examples=("Qwen/Qwen3-0.6B",),
    ),
    FamilySpec(
        name="qwen",
        model_types=("qwen",),
        architectures=("QWenLMHeadModel",),
        lora_target_modules=("c_attn",),
        fingpt_lora_target_modules=("c_attn",),
        needs_remote_code=True,
        pad_token_candidates=("<|extra_0|>", "<|endoftext|>"),
        eos_token_candidates=("<|endoftext|>",),
        notes="Qwen v1 (remote code): fused c_attn; the tiktoken tokenizer has no pad and no EOS set, "
        "FinGPT uses <|extra_0|> as pad and <|endoftext|> as EOS.",
        examples=("Qwen/Qwen-7B",),
    ),
    FamilySpec(
        name="qwen-native",
        model_types=(),
        converted_from=("qwen",),
        lora_target_modules=_QKV,
        fingpt_lora_target_modules=_QKV,
        pad_token_candidates=("<|extra_0|>", "<|endoftext|>"),
        eos_token_candidates=("<|endoftext|>",),
        notes="Qwen-7B/14B (v1) converted by `fingpt-hf model convert` (Qwen2ForCausalLM): c_attn split "
        "into q/k/v_proj (FinGPT's target); pad <|extra_0|> and EOS <|endoftext|> as FinGPT sets them. "
        "Exact up to the original's seq_length only (no dynamic NTK / logn scaling beyond it).",
        examples=("Qwen/Qwen-14B", "Qwen/Qwen-7B"),
    ),
    FamilySpec(
        name="baichuan",
        model_types=("baichuan",),
        architectures=("BaichuanForCausalLM", "BaiChuanForCausalLM"),
        lora_target_modules=("W_pack",),
        fingpt_lora_target_modules=_QKV,
        needs_remote_code=True,
        pad_token_candidates=("<unk>",),
        notes="Baichuan/Baichuan2 (remote code) fuse q/k/v into W_pack: FinGPT's q_proj/k_proj/v_proj "
        "targets match no module and would train nothing, so we target W_pack.",
        examples=("baichuan-inc/Baichuan2-7B-Base",),
    ),
    FamilySpec(
        name="baichuan2-native",
        model_types=(),
        converted_from=("baichuan2",),
        lora_target_modules=_QKV,
        fingpt_lora_target_modules=_QKV,
        pad_token_candidates=("<unk>",),
        notes="Baichuan2-7B converted by `fingpt-hf model convert` (LlamaForCausalLM): W_pack split into "
        "q/k/v_proj, so LoRA on q/k/v trains the weights FinGPT's W_pack LoRA trained.",
        examples=("baichuan-inc/Baichuan2-7B-Base",),
    ),
    FamilySpec(
        name="chatglm",
        model_types=("chatglm",),
        architectures=("ChatGLMModel", "ChatGLMForConditionalGeneration"),
        lora_target_modules=("query_key_value",),
        fingpt_lora_target_modules=("query_key_value",),
        needs_remote_code=True,
        pad_token_candidates=("<unk>", "<pad>"),
        prefix_tokens=("[gMASK]", "sop"),
        notes="ChatGLM2/3 (remote code): fused query_key_value; the tokenizer prefixes every prompt "
        "with [gMASK] sop, which must stay at the start when truncating.",
        examples=("THUDM/chatglm2-6b", "THUDM/chatglm3-6b"),
    ),
    FamilySpec(
        name="chatglm2-native",
        model_types=(),
        converted_from=("chatglm2",),
        lora_target_modules=_QKV,
        fingpt_lora_target_modules=_QKV,
        pad_token_candidates=("<unk>",),
        prefix_tokens=("[gMASK]", "sop"),
        notes="ChatGLM2-6B converted by `fingpt-hf model convert` (GlmForCausalLM): query_key_value split "
        "into q/k/v_proj (FinGPT's target); the tokenizer prefixes [gMASK] sop like the original.",
        examples=("THUDM/chatglm2-6b",),
    ),
    FamilySpec(
        name="glm",
        model_types=("glm", "glm4"),
        architectures=("GlmForCausalLM", "Glm4ForCausalLM"),
        lora_target_modules=_QKV,
        prefix_tokens=("[gMASK]", "<sop>"),
        notes="Transformers-native GLM-4 ports (the -hf checkpoints); separate q/k/v unlike remote ChatGLM.",
        examples=("THUDM/glm-4-9b-hf",),
    ),
    FamilySpec(
        name="falcon",
        model_types=("falcon", "RefinedWeb", "RefinedWebModel"),
        architectures=("FalconForCausalLM", "RWForCausalLM"),
        lora_target_modules=("query_key_value",),
        fingpt_lora_target_modules=("query_key_value",),
        notes="Fused query_key_value; no pad token (EOS <|endoftext|> is used).",
        examples=("tiiuae/falcon-7b",),
    ),
    FamilySpec(
        name="bloom",
        model_types=("bloom",),
        architectures=("BloomForCausalLM",),
        lora_target_modules=("query_key_value",),
        fingpt_lora_target_modules=("query_key_value",),
        pad_token_candidates=("<pad>",),
        notes="Fused query_key_value; ALiBi positions come from the attention mask (no position_ids).",
        examples=("bigscience/bloom-560m",),
    ),
    FamilySpec(
        name="mpt",
        model_types=("mpt",),
        architectures=("MptForCausalLM", "MPTForCausalLM"),
        lora_target_modules=("Wqkv",),
        fingpt_lora_target_modules=("Wqkv",),
        pad_token_candidates=("<|padding|>",),
        notes="Fused Wqkv; GPT-NeoX tokenizer, whose <|padding|> token serves as pad. ALiBi, no position_ids.",
        examples=("mosaicml/mpt-7b",),
    ),
    FamilySpec(
        name="internlm",
        model_types=("internlm",),
        architectures=("InternLMForCausalLM",),
        lora_target_modules=_QKV,
        fingpt_lora_target_modules=_QKV,
        needs_remote_code=True,
        pad_token_candidates=("<unk>",),
        notes="InternLM v1 (remote code): separate q/k/v projections like Llama.",
        examples=("internlm/internlm-7b",),
    ),
    FamilySpec(
        name="internlm2",
        model_types=("internlm2",),
        architectures=("InternLM2ForCausalLM",),
        lora_target_modules=("wqkv",),
        needs_remote_code=True,
        pad_token_candidates=("<unk>",),
        notes="InternLM2/2.5 (remote code): fused attention.wqkv; the output head is named 'output'.",
        examples=("internlm/internlm2_5-7b-chat",),
    ),
)

#: Used for any model no entry recognises: LoRA on every linear layer but the head.
GENERIC = FamilySpec(
    name="generic",
    model_types=(),
    lora_target_modules=ALL_LINEAR_TARGETS,
    notes="Unrecognised family: LoRA on all linear layers except the output head.",
)
