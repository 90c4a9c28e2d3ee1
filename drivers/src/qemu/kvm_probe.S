.code16
.globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    mov $0x1000, %di
    mov $0x1800, %cx
    rep stosw
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    mov $0x3000, %di
    mov $0x83, %eax
    mov $512, %cx
3:  movl %eax, (%di)
    add $0x200000, %eax
    add $8, %di
    loop 3b
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0x1000, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    lgdtl gdtr - _start + 0x7c00
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmp $0x08, $(lm - _start + 0x7c00)
.code64
lm:
    mov $0x100000, %rdi
4:  movq %rdi, (%rdi)
    add $4096, %rdi
    cmp $0x8000000, %rdi
    jb 4b
    mov $0x2a, %al
    out %al, $0xf4
1:  hlt
    jmp 1b
.p2align 3
gdt:
    .quad 0
    .quad 0x00209A0000000000
gdtr:
    .word 15
    .long gdt - _start + 0x7c00
.org 510
.byte 0x55, 0xaa
