//! The models the app offers, each in a few weight variants, with the download size and the
//! GPU memory they need shown before anything is downloaded. Sizes come from the published
//! files and the parameter counts in MODELS.md (§3); GPU memory is the weights as the engine
//! keeps them, the KV cache (f32, at the chosen context) and about 0.3 GB of activations.

/// One way to run a model: which repository and files, and what it costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    /// Stable id (the `<select>` value).
    pub id: &'static str,
    pub model: &'static str,
    pub label: &'static str,
    pub repo: &'static str,
    /// A GGUF quantization tag; `None` for the safetensors weights.
    pub gguf: Option<&'static str>,
    /// Quantize safetensors weights on load (`q8_0`, `q4_0`).
    pub quantize: Option<&'static str>,
    /// Bytes to download (text and vision weights).
    pub download_gb: f64,
    /// Weight bytes on the GPU.
    pub weights_gb: f64,
    /// KV-cache bytes per token of context (f32 keys and values over all layers).
    pub kv_bytes_per_token: u64,
}

impl Variant {
    /// Estimated GPU memory in GB at `context` tokens.
    pub fn gpu_gb(&self, context: usize) -> f64 {
        self.weights_gb + (self.kv_bytes_per_token * context as u64) as f64 / 1e9 + ACTIVATIONS_GB
    }
}

const ACTIVATIONS_GB: f64 = 0.3;
const QWEN3_2B_KV: u64 = 229_376;
const QWEN2_2B_KV: u64 = 57_344;
const QWEN25_3B_KV: u64 = 73_728;

/// Every variant; the first is the default.
pub const VARIANTS: [Variant; 8] = [
    Variant {
        id: "qwen3-vl-2b-q4_k_m",
        model: "Qwen3-VL-2B-Instruct",
        label: "Q4_K_M GGUF + F16 vision",
        repo: "Qwen/Qwen3-VL-2B-Instruct-GGUF",
        gguf: Some("Q4_K_M"),
        quantize: None,
        download_gb: 1.93,
        weights_gb: 1.93,
        kv_bytes_per_token: QWEN3_2B_KV,
    },
    Variant {
        id: "qwen3-vl-2b-q8_0",
        model: "Qwen3-VL-2B-Instruct",
        label: "Q8_0 GGUF + F16 vision",
        repo: "Qwen/Qwen3-VL-2B-Instruct-GGUF",
        gguf: Some("Q8_0"),
        quantize: None,
        download_gb: 2.65,
        weights_gb: 2.65,
        kv_bytes_per_token: QWEN3_2B_KV,
    },
    Variant {
        id: "qwen3-vl-2b-bf16",
        model: "Qwen3-VL-2B-Instruct",
        label: "BF16 safetensors",
        repo: "Qwen/Qwen3-VL-2B-Instruct",
        gguf: None,
        quantize: None,
        download_gb: 4.25,
        weights_gb: 4.25,
        kv_bytes_per_token: QWEN3_2B_KV,
    },
    Variant {
        id: "qwen3-vl-2b-bf16-q8",
        model: "Qwen3-VL-2B-Instruct",
        label: "BF16 safetensors, Q8_0 on load",
        repo: "Qwen/Qwen3-VL-2B-Instruct",
        gguf: None,
        quantize: Some("q8_0"),
        download_gb: 4.25,
        weights_gb: 2.26,
        kv_bytes_per_token: QWEN3_2B_KV,
    },
    Variant {
        id: "qwen2-vl-2b-q4_k_m",
        model: "Qwen2-VL-2B-Instruct",
        label: "Q4_K_M GGUF + F16 vision",
        repo: "ggml-org/Qwen2-VL-2B-Instruct-GGUF",
        gguf: Some("Q4_K_M"),
        quantize: None,
        download_gb: 2.32,
        weights_gb: 2.32,
        kv_bytes_per_token: QWEN2_2B_KV,
    },
    Variant {
        id: "qwen2-vl-2b-bf16",
        model: "Qwen2-VL-2B-Instruct",
        label: "BF16 safetensors",
        repo: "Qwen/Qwen2-VL-2B-Instruct",
        gguf: None,
        quantize: None,
        download_gb: 4.42,
        weights_gb: 4.42,
        kv_bytes_per_token: QWEN2_2B_KV,
    },
    Variant {
        id: "qwen2.5-vl-3b-q4_k_m",
        model: "Qwen2.5-VL-3B-Instruct",
        label: "Q4_K_M GGUF + F16 vision",
        repo: "ggml-org/Qwen2.5-VL-3B-Instruct-GGUF",
        gguf: Some("Q4_K_M"),
        quantize: None,
        download_gb: 3.27,
        weights_gb: 3.27,
        kv_bytes_per_token: QWEN25_3B_KV,
    },
    Variant {
        id: "qwen2.5-vl-3b-bf16-q8",
        model: "Qwen2.5-VL-3B-Instruct",
        label: "BF16 safetensors, Q8_0 on load",
        repo: "Qwen/Qwen2.5-VL-3B-Instruct",
        gguf: None,
        quantize: Some("q8_0"),
        download_gb: 7.51,
        weights_gb: 3.99,
        kv_bytes_per_token: QWEN25_3B_KV,
    },
];

pub fn variant(id: &str) -> Option<&'static Variant> {
    VARIANTS.iter().find(|v| v.id == id)
}

/// The select value of a model given by URL rather than from the catalogue.
pub const CUSTOM_URL: &str = "custom-url";
/// The select value of a Hub repository named in the page's address (`?repo=`).
pub const CUSTOM_REPO: &str = "custom-repo";

/// A speech recognizer the app offers: a Whisper repository (faster-whisper's CTranslate2
/// float16 weights where they exist, half the download of the float32 safetensors).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpeechVariant {
    pub id: &'static str,
    pub label: &'static str,
    pub repo: &'static str,
    /// Bytes to download (`model.bin` or `model.safetensors` and the small files).
    pub download_mb: f64,
    /// GPU memory: the f16 weights, the decoder caches and one window's encoder buffers.
    pub gpu_mb: f64,
    pub multilingual: bool,
}

/// Every speech recognizer; the first is the default.
pub const SPEECH_VARIANTS: [SpeechVariant; 5] = [
    SpeechVariant {
        id: "whisper-base",
        label: "Whisper base (74M, multilingual)",
        repo: "Systran/faster-whisper-base",
        download_mb: 145.0,
        gpu_mb: 200.0,
        multilingual: true,
    },
    SpeechVariant {
        id: "whisper-tiny.en",
        label: "Whisper tiny.en (39M, English)",
        repo: "Systran/faster-whisper-tiny.en",
        download_mb: 75.6,
        gpu_mb: 110.0,
        multilingual: false,
    },
    SpeechVariant {
        id: "whisper-tiny",
        label: "Whisper tiny (39M, multilingual)",
        repo: "Systran/faster-whisper-tiny",
        download_mb: 75.6,
        gpu_mb: 110.0,
        multilingual: true,
    },
    SpeechVariant {
        id: "whisper-small",
        label: "Whisper small (244M, multilingual)",
        repo: "Systran/faster-whisper-small",
        download_mb: 484.0,
        gpu_mb: 590.0,
        multilingual: true,
    },
    SpeechVariant {
        id: "whisper-large-v3-turbo",
        label: "Whisper large-v3-turbo (809M, multilingual)",
        repo: "openai/whisper-large-v3-turbo",
        download_mb: 1620.0,
        gpu_mb: 1850.0,
        multilingual: true,
    },
];

pub fn speech_variant(id: &str) -> Option<&'static SpeechVariant> {
    SPEECH_VARIANTS.iter().find(|v| v.id == id)
}
