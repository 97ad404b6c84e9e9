/*
 * Force-included (gcc -include) into every cgo C file when install.sh builds
 * the local test mixnet with the x86-64 assembly backend of highctidh
 * (KP_CTIDH_BACKEND=asm, the default on CPUs with BMI2 and ADX).
 *
 * highctidh's Go binding passes -DHIGHCTIDH_PORTABLE=1 on amd64, which selects
 * the formally verified but slow fiat-crypto field arithmetic. CGO_CFLAGS come
 * before the package's own flags, so a -D there would lose; a file given with
 * -include is read after every -D/-U, so the value set here wins.
 *
 * Only highctidh's C files define both CGONUTS and BITS, so every other cgo
 * package (zstd, sphincs+, ...) is unaffected. Assembler sources are left
 * alone: fp2fiat.c already pulls the field assembly in with a gas .include,
 * and enabling the stand-alone .S files too would define each symbol twice.
 */
#if defined(CGONUTS) && defined(BITS) && defined(__x86_64__) && !defined(__ASSEMBLER__)
#undef HIGHCTIDH_PORTABLE
#define HIGHCTIDH_PORTABLE 0
/*
 * int32_sort.c has an AVX2 branch that compiles to nothing under cgo, which
 * leaves crypto_sort_int32 undefined at link time. The portable sort is
 * constant-time too and is not on the hot path.
 */
#undef __AVX2__
#endif
