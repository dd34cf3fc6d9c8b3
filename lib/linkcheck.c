/* Linked with every object of tollgate_pure and tollgate_base and nothing else (CMakeLists.txt):
 * a call from those modules into libuv, wolfSSL or libyaml leaves an undefined symbol and
 * fails the build, which is how "pure modules do no I/O" is kept. */
int main(void)
{
    return 0;
}
