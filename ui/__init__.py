"""The Gradio chat demo."""
