"""What the methods share: the interface (`interface`), the one training loop (`loop`), loss
terms (`objectives`) and LoRA adapters in PEFT's layout (`lora`). No method lives here."""
