fn main() {
    latte_board_build::configure(latte_board_build::Board {
        model: "../../models/latte-micro-decay/latte-micro-decay-q4_0.gguf",
        model_region: "FLASH",
        model_section: None,
        stack_reserve: 64 * 1024,
        code_reserve: 192 * 1024,
        ring: "f32",
    });
}
