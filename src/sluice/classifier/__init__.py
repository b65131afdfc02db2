"""What kind of mail a message is, why, and learning that from labeled and corrected mail.

Imports only `sluice.core`. The gateway uses `sluice.classifier.model.Classifier`.
"""
