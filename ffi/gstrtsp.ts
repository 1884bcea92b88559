/** libgstrtsp-1.0 (RTSP messages) and libgstsdp-1.0 (SDP) symbols. C signatures in the comments. */
export const rtspMessageSymbols = {
  // GstRTSPMsgType gst_rtsp_message_get_type (GstRTSPMessage *msg): GST_RTSP_MESSAGE_REQUEST 1
  gst_rtsp_message_get_type: { parameters: ["pointer"], result: "i32" },
  // GstRTSPResult gst_rtsp_message_parse_request (GstRTSPMessage *msg, GstRTSPMethod *method,
  //   const gchar **uri, GstRTSPVersion *version): 0 (GST_RTSP_OK) for a request
  gst_rtsp_message_parse_request: {
    parameters: ["pointer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // GstRTSPResult gst_rtsp_message_get_body (const GstRTSPMessage *msg, guint8 **data,
  //   guint *size): the message keeps the body
  gst_rtsp_message_get_body: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // GstRTSPResult gst_rtsp_message_get_header_by_name (GstRTSPMessage *msg, const gchar *header,
  //   gchar **value, gint index): the message keeps the value; GST_RTSP_ENOTIMPL when absent
  gst_rtsp_message_get_header_by_name: {
    parameters: ["pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  // GstRTSPResult gst_rtsp_message_new_response (GstRTSPMessage **msg, GstRTSPStatusCode code,
  //   const gchar *reason, const GstRTSPMessage *request)
  gst_rtsp_message_new_response: {
    parameters: ["buffer", "i32", "buffer", "pointer"],
    result: "i32",
  },
  // const gchar *gst_rtsp_connection_get_ip (const GstRTSPConnection *conn): the peer's address
  gst_rtsp_connection_get_ip: { parameters: ["pointer"], result: "pointer" },
  // GSocket *gst_rtsp_connection_get_read_socket (const GstRTSPConnection *conn): the
  //   connection keeps it; a CRITICAL on a connection already closed (no socket)
  gst_rtsp_connection_get_read_socket: { parameters: ["pointer"], result: "pointer" },
  // GSocket *gst_rtsp_connection_get_write_socket (const GstRTSPConnection *conn): the
  //   connection keeps it; a CRITICAL on a connection already closed (no socket)
  gst_rtsp_connection_get_write_socket: { parameters: ["pointer"], result: "pointer" },
  // gchar *gst_rtsp_url_get_request_uri (const GstRTSPUrl *url): transfer full, with the query
  gst_rtsp_url_get_request_uri: { parameters: ["pointer"], result: "pointer" },
  // GstRTSPResult gst_rtsp_message_free (GstRTSPMessage *msg)
  gst_rtsp_message_free: { parameters: ["pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export const sdpSymbols = {
  // GstSDPResult gst_sdp_message_new_from_text (const gchar *text, GstSDPMessage **msg): 0 when OK
  gst_sdp_message_new_from_text: { parameters: ["buffer", "buffer"], result: "i32" },
  // GstSDPResult gst_sdp_message_free (GstSDPMessage *msg)
  gst_sdp_message_free: { parameters: ["pointer"], result: "i32" },
  // guint gst_sdp_message_medias_len (const GstSDPMessage *msg)
  gst_sdp_message_medias_len: { parameters: ["pointer"], result: "u32" },
  // const GstSDPMedia *gst_sdp_message_get_media (const GstSDPMessage *msg, guint idx)
  gst_sdp_message_get_media: { parameters: ["pointer", "u32"], result: "pointer" },
  // const gchar *gst_sdp_media_get_media (const GstSDPMedia *media): "video", "audio"...
  gst_sdp_media_get_media: { parameters: ["pointer"], result: "pointer" },
  // guint gst_sdp_media_formats_len (const GstSDPMedia *media)
  gst_sdp_media_formats_len: { parameters: ["pointer"], result: "u32" },
  // const gchar *gst_sdp_media_get_format (const GstSDPMedia *media, guint idx): the payload type
  gst_sdp_media_get_format: { parameters: ["pointer", "u32"], result: "pointer" },
  // GstCaps *gst_sdp_media_get_caps_from_media (const GstSDPMedia *media, gint pt): from rtpmap
  //   and fmtp, named application/x-unknown; NULL when the payload type is not described
  gst_sdp_media_get_caps_from_media: { parameters: ["pointer", "i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;
