/*
 * The floor of the control-plane benchmark: the same cycle our server and gstd are timed on,
 * done in-process from C with nothing around it. Each cycle parses `videotestsrc ! fakesink`,
 * sets it to PLAYING, waits for PLAYING, then sets it to NULL and frees it; prints one line per
 * cycle with the create -> PLAYING time in microseconds (the first 5 cycles are a warm-up).
 *
 * Optional, for bench/hops.ts: an idle time before each cycle (microseconds), and `hand-off`,
 * which makes the calls as the server does (PAUSED, PLAYING, then the wait), each handed to a
 * worker thread while this thread waits on a condition variable for its result.
 *
 *   cc bench/floor.c -o floor $(pkg-config --cflags --libs gstreamer-1.0) && ./floor 200
 *   ./floor CYCLES [IDLE_US [hand-off]]
 */
#include <gst/gst.h>
#include <stdlib.h>
#include <string.h>

enum call { NONE, SET_STATE, GET_STATE };

static GMutex lock;
static GCond to_worker, to_caller;
static enum call pending = NONE;
static gboolean answered = FALSE;
static GstElement *target;
static GstState target_state;
static GstStateChangeReturn answer;

static gpointer worker(gpointer unused) {
  for (;;) {
    g_mutex_lock(&lock);
    while (pending == NONE) g_cond_wait(&to_worker, &lock);
    enum call call = pending;
    pending = NONE;
    g_mutex_unlock(&lock);
    GstStateChangeReturn result = call == SET_STATE
                                      ? gst_element_set_state(target, target_state)
                                      : gst_element_get_state(target, NULL, NULL, 5 * GST_SECOND);
    g_mutex_lock(&lock);
    answer = result;
    answered = TRUE;
    g_cond_signal(&to_caller);
    g_mutex_unlock(&lock);
  }
  return unused;
}

/* One call made on the worker thread; this thread waits for its result. */
static GstStateChangeReturn handed_off(enum call call, GstElement *element, GstState state) {
  g_mutex_lock(&lock);
  target = element;
  target_state = state;
  pending = call;
  answered = FALSE;
  g_cond_signal(&to_worker);
  while (!answered) g_cond_wait(&to_caller, &lock);
  GstStateChangeReturn result = answer;
  g_mutex_unlock(&lock);
  return result;
}

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  int cycles = argc > 1 ? atoi(argv[1]) : 200;
  gulong idle_us = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
  gboolean hand_off = argc > 3 && strcmp(argv[3], "hand-off") == 0;
  if (hand_off) g_thread_new("worker", worker, NULL);
  for (int i = -5; i < cycles; i++) {
    if (idle_us > 0) g_usleep(idle_us);
    gint64 start = g_get_monotonic_time();
    GError *error = NULL;
    GstElement *pipeline = gst_parse_launch("videotestsrc ! fakesink", &error);
    if (pipeline == NULL) {
      g_printerr("parse failed: %s\n", error->message);
      return 1;
    }
    gboolean playing_reached =
        hand_off ? handed_off(SET_STATE, pipeline, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE &&
                       handed_off(SET_STATE, pipeline, GST_STATE_PLAYING) !=
                           GST_STATE_CHANGE_FAILURE &&
                       handed_off(GET_STATE, pipeline, GST_STATE_VOID_PENDING) ==
                           GST_STATE_CHANGE_SUCCESS
                 : gst_element_set_state(pipeline, GST_STATE_PLAYING) !=
                           GST_STATE_CHANGE_FAILURE &&
                       gst_element_get_state(pipeline, NULL, NULL, 5 * GST_SECOND) ==
                           GST_STATE_CHANGE_SUCCESS;
    if (!playing_reached) {
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
