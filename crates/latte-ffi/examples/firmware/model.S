/* The model, in flash, 16-byte aligned (the library reads it in place). */
    .section .model, "a"
    .balign 16
    .global latte_model_bytes
latte_model_bytes:
    .incbin MODEL_PATH
    .global latte_model_end
latte_model_end:
