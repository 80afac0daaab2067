"""Skew checks: does what was served match what the model was trained on?"""
