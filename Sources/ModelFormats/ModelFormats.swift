/// Reading model files: safetensors and GGUF headers, config.json, and the GPU memory they imply.
public enum ModelFormats {}
