"""Host side of the nano-tflm device link: protocol, client, emulators, reports."""
