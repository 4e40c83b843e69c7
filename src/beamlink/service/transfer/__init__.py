"""service/transfer"""
