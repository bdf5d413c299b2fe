"""How focus looks, for every screen of the app: a reversed, bold label or header and an
underlined control, so the focused control is plain in a 16-colour terminal as in a 256-colour one
(a shade of background alone vanishes there)."""

FOCUS_CSS = """
Field.focused > Label { text-style: reverse bold; }
Input:focus { text-style: bold underline; }
Select:focus > SelectCurrent { text-style: bold underline; }
Checkbox:focus { text-style: reverse bold; }
DataTable:focus > .datatable--header { text-style: reverse bold; }
Tabs:focus Tab.-active { text-style: reverse bold; }
OptionList:focus > .option-list--option-highlighted { text-style: reverse bold; }
ResultPlot, TokenText { border-left: blank; }
ResultPlot:focus, TokenText:focus { border-left: thick $accent; }
"""
