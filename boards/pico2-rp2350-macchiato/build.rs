fn main() {
    latte_board_build::configure(latte_board_build::Board {
        model: "../../models/latte-macchiato-micro/latte-macchiato-micro-q8_0.gguf",
        model_region: "FLASH",
        model_section: None,
        stack_reserve: 64 * 1024,
        code_reserve: 192 * 1024,
        ring: "q8",
    });
}
