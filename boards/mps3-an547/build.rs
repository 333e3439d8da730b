fn main() {
    latte_board_build::configure(latte_board_build::Board {
        model: "../../models/latte-micro-decay/latte-micro-decay-q8_0.gguf",
        // Neither the ITCM nor the DTCM holds the model: the SRAM does.
        model_region: "MODEL",
        model_section: Some(".model"),
        stack_reserve: 64 * 1024,
        code_reserve: 0,
        ring: "f32",
    });
}
