/* Entry point of the fuzz executable: SwiftPM links debug executables with `--defsym main=fuzz_hammer_main`, so main
 * is ours; it hands over to libFuzzer's driver. Without that defsym, libFuzzer's own main is used and this is unused. */
#ifndef FUZZ_MAIN_H
#define FUZZ_MAIN_H
int fuzz_hammer_main(int argc, char **argv);
#endif
