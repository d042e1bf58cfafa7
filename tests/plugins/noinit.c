/* A shared object that is not an nbdkit plugin: it has no plugin_init,
 * so the host must refuse it with a clear message. */
int qnbd_test_not_a_plugin(void);
int qnbd_test_not_a_plugin(void)
{
  return 42;
}
