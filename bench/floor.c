/*
 * The floor of the control-plane benchmark: the same cycle our server and gstd are timed on,
 * done in-process from C with nothing around it. Each cycle parses `videotestsrc ! fakesink`,
 * sets it to PLAYING, waits for PLAYING, then sets it to NULL and frees it; prints one line per
 * cycle with the create -> PLAYING time in microseconds (the first 5 cycles are a warm-up).
 *
 *   cc bench/floor.c -o floor $(pkg-config --cflags --libs gstreamer-1.0) && ./floor 200
 */
#include <gst/gst.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  int cycles = argc > 1 ? atoi(argv[1]) : 200;
  for (int i = -5; i < cycles; i++) {
    gint64 start = g_get_monotonic_time();
    GError *error = NULL;
    GstElement *pipeline = gst_parse_launch("videotestsrc ! fakesink", &error);
    if (pipeline == NULL) {
      g_printerr("parse failed: %s\n", error->message);
      return 1;
    }
    if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE ||
        gst_element_get_state(pipeline, NULL, NULL, 5 * GST_SECOND) != GST_STATE_CHANGE_SUCCESS) {
      g_printerr("no PLAYING\n");
      return 1;
    }
    gint64 playing = g_get_monotonic_time();
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(pipeline);
    if (i >= 0) g_print("%" G_GINT64_FORMAT "\n", playing - start);
  }
  return 0;
}
