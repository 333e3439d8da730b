fn main() {
    latte_board_build::configure_classifier(latte_board_build::ClassifierBoard {
        model: "../../models/latte-spam-micro/latte-spam-micro-q8_0.gguf",
        messages: "../../models/latte-spam-micro/board-messages",
        chunk: 8,
        stack_reserve: 32 * 1024,
        code_reserve: 256 * 1024,
    });
}
