# Small pieces of guest-kernel code for the bt execution tests. They are data
# here (.rodata): a test copies one to the guest address it chooses and runs
# it there natively (the reference) and translated. Each is position
# independent (relative branches, RIP-relative data inside the snippet) and
# ends with hlt: natively a #GP at CPL3, translated a call-out; both stop
# with the guest's RIP at the hlt. None uses a privileged instruction
# before it, so the native run is the CPU's own answer.
        .intel_syntax noprefix
        .section .rodata.bt_snippets, "a"

        .macro snippet name
        .globl bt_snippet_\name\()_start, bt_snippet_\name\()_end
bt_snippet_\name\()_start:
        .endm
        .macro end_snippet name
bt_snippet_\name\()_end:
        .endm

# A loop of arithmetic with a known result: rax = sum over rcx = 10..1 of
# (rax + rcx) * 3, kept in 64 bits.
        snippet compute
        xor eax, eax
        mov ecx, 10
1:      add rax, rcx
        imul rax, rax, 3
        xor rax, 0x55
        dec rcx
        jnz 1b
        hlt
        end_snippet compute

# Two calls of one function: the guest's stack holds the guest's return
# addresses.
        snippet call_ret
        mov ebx, 5
        call 2f
        add rbx, rax
        call 2f
        hlt
2:      lea rax, [rbx + rbx + 1]
        ret
        end_snippet call_ret

# Indirect jmp, indirect call and ret, three times round: the first time
# round each target misses the indirect-branch table, afterwards they hit.
        snippet indirect
        mov ecx, 3
        xor ebx, ebx
3:      lea rax, [rip + 4f]
        jmp rax
4:      add rbx, 1
        lea rax, [rip + 5f]
        call rax
        dec ecx
        jnz 3b
        hlt
5:      add rbx, 0x10
        ret
        end_snippet indirect

# Flags set before an indirect branch are the guest's after it: the lookup
# routine's compare must not show. jmp rcx: the operand is the register the
# TC borrows.
        snippet flags
        mov rax, 1
        lea rcx, [rip + 6f]
        cmp rax, 2
        jmp rcx
6:      setc bl
        sets bh
        setz dl
        seto dh
        hlt
        end_snippet flags

# String moves, loop, jrcxz, RIP-relative stores, call through [rsp] and
# ret imm16.
        snippet mixed
        lea rsi, [rip + 9f]
        lea rdi, [rip + 10f]
        mov ecx, 8
        rep movsb
        mov ecx, 5
7:      inc qword ptr [rip + 11f]
        loop 7b
        jrcxz 8f
        ud2
8:      push 0x1234
        lea rax, [rip + 12f]
        push rax
        call qword ptr [rsp]
        pop rdx
        mov rax, qword ptr [rip + 11f]
        mov rbx, qword ptr [rip + 10f]
        hlt
12:     lea r8, [rsp + 8]
        ret 8
9:      .ascii "abcdefgh"
10:     .quad 0
11:     .quad 0
        end_snippet mixed

# Divide by zero: #DE at the div.
        snippet divide
        mov eax, 7
        xor edx, edx
        xor ecx, ecx
        add rbx, 1
        div ecx
        hlt
        end_snippet divide

# A call whose push faults (the test gives it an RSP at a guard page).
        snippet push_fault
        mov eax, 1
        call 13f
        hlt
13:     ret
        end_snippet push_fault

# cli and sti, for the virtual interrupt flag.
        snippet interrupt_flag
        cli
        mov eax, 1
        sti
        mov ebx, 2
        cli
        hlt
        end_snippet interrupt_flag

# The x86 holes, which the translator makes inline sequences on the scratch
# page's virtual values. Natively they read the host's own state (or fault,
# with UMIP): the tests compare these translated with what the virtual CPU
# says, and with the native run where the two agree (pushf with the virtual
# IF 1 and IOPL 0, popf).

# pushfq and pushf (16 bits) after stc.
        snippet flags_read
        stc
        pushfq
        pop rbx
        pushfw
        pop cx
        hlt
        end_snippet flags_read

# popfq of the image the test puts in rdi, read back with pushfq.
        snippet flags_write
        push rdi
        popfq
        pushfq
        pop rbx
        hlt
        end_snippet flags_write

# popf (16 bits) of di.
        snippet flags_write_word
        push di
        popfw
        pushfq
        pop rbx
        hlt
        end_snippet flags_write_word

# A misaligned load after a popfq that sets AC (rdi): at CPL3 with CR0.AM
# the CPU raises #AC, which a CPL0 kernel never takes.
        snippet misaligned_after_popf
        push rdi
        popfq
        mov rax, [rsp - 3]
        pushfq
        pop rbx
        hlt
        end_snippet misaligned_after_popf

# mov from segment registers into registers of every width, into memory
# through operands that name rax, rcx and rdx (rsi: a buffer, rax, rcx:
# small indexes the test sets), and push fs/gs.
        snippet segment_reads
        mov [rsi + rax], es
        mov [rsi + rcx*2 + 4], ds
        mov [rdx], ss
        mov [rip + 21f], gs
        mov ax, es
        mov ebx, ds
        .byte 0x48, 0x8c, 0xe1  # mov rcx, fs (REX.W: gas leaves it out)
        mov r9w, gs
        mov r10d, cs
        .byte 0x49, 0x8c, 0xd3  # mov r11, ss
        push fs
        pop r12
        pushw gs
        pop r13w
        hlt
21:     .word 0x7777
        end_snippet segment_reads

# sgdt, sidt, sldt, str and smsw into memory (rax, rdx: the test's buffer,
# rcx: an index) and into registers.
        snippet system_reads
        sgdt [rax]
        sidt [rax + rcx + 16]
        sldt [rdx + 32]
        str [rax + 40]
        smsw [rdx + 48]
        sldt r8w
        str r9d
        smsw r10
        smsw r11d
        smsw r12w
        .byte 0x48, 0x0f, 0x00, 0xc3  # sldt rbx
        hlt
        end_snippet system_reads

        .section .note.GNU-stack, "", @progbits
