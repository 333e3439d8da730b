/* Minimal Cortex-M4F start-up for QEMU's mps2-an386: vector table, .data and
 * .bss set-up, the FPU switched on, main(), and semihosting for output and
 * the exit status (QEMU runs with -semihosting-config enable=on). */
#include <stddef.h>
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

/* ARM semihosting: operation in r0, argument block in r1, `bkpt 0xab`. */
static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_write(const char *s, size_t n) {
    /* The console: SYS_OPEN of ":tt" for writing (mode 4), once. */
    static uint32_t handle = 0xFFFFFFFFu;
    if (handle == 0xFFFFFFFFu) {
        static const char tt[] = ":tt";
        uint32_t open[3] = {(uint32_t)(uintptr_t)tt, 4, 3};
        handle = semihost(0x01 /* SYS_OPEN */, open);
    }
    uint32_t block[3] = {handle, (uint32_t)(uintptr_t)s, (uint32_t)n};
    semihost(0x05 /* SYS_WRITE */, block);
}

void sh_exit(int ok) {
    /* SYS_EXIT_EXTENDED: ADP_Stopped_ApplicationExit (0x20026) and the
     * status, which QEMU makes its own exit status. */
    uint32_t block[2] = {0x20026, ok ? 0u : 1u};
    semihost(0x20, block);
    for (;;) {
    }
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    /* CPACR: full access to CP10 and CP11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88 |= (0xFu << 20);
    __asm__ volatile("dsb\n isb");
    sh_exit(main() == 0);
}

void Fault_Handler(void) {
    static const char msg[] = "fault\n";
    sh_write(msg, sizeof msg - 1);
    sh_exit(0);
}

__attribute__((section(".vectors"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler,
    Fault_Handler,
};
