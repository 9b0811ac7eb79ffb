"""The web device: a static page that trains in the browser (onnxruntime-web) and speaks protocol 1.2 over
MQTT over WebSockets; ``fmfl web`` builds and serves it for one bundle and one federation (docs/web.md)."""
