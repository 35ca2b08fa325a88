"""Long texts go into an editor a slice of whole lines per turn of the event loop, as one undo step."""

import pytest
from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

from inspector.gui.text_loading import REMOVE_SLICE_CHARS, SLICE_CHARS, ProgressiveText


@pytest.fixture
def editor(qtbot):
    editor = QPlainTextEdit()
    editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    qtbot.addWidget(editor)
    return editor


def lines(count, prefix="line"):
    return "".join(f'  "{prefix}-{i:05d}": [1, 2, 3],\n' for i in range(count))


def changes_of(editor):
    """Each change to the editor's document: (position, characters removed, characters added)."""
    changes = []
    editor.document().contentsChange.connect(lambda at, removed, added: changes.append((at, removed, added)))
    return changes


def test_slices_end_at_line_ends_and_a_line_longer_than_a_slice_goes_in_whole(editor, qtbot):
    long_line = '  "blob": "' + "z" * (3 * SLICE_CHARS) + '",\n'
    text = "{\n" + lines(1000) + long_line + lines(1000, "more") + '  "end": 0\n}'
    loader = ProgressiveText(editor)

    loader.load(text)
    changes = changes_of(editor)  # those of the slices: load() has cleared the editor at once
    qtbot.waitUntil(lambda: not loader.loading)

    assert editor.toPlainText() == text
    inserted = [(at, added) for at, _removed, added in changes if added]
    assert len(inserted) > 4  # a slice at a time
    document = editor.document()
    for at, added in inserted[:-1]:
        assert document.characterAt(at + added - 1) == "\u2029"  # each slice ends a line (a block)
    assert [added for _at, added in inserted if added > SLICE_CHARS] == [len(long_line)]  # whole, alone


def test_a_replaced_selection_goes_out_a_slice_at_a_time_and_the_whole_insertion_is_one_undo_step(
    editor, qtbot
):
    editor.setPlainText("{\n" + lines(8000) + '  "end": 0\n}')
    editor.textCursor().insertText("typed ")  # an edit of the user's before the paste
    before = editor.toPlainText()
    assert len(before) > 4 * REMOVE_SLICE_CHARS
    new = "{\n" + lines(3000, "new") + '  "end": 1\n}'
    loader = ProgressiveText(editor)
    changes = changes_of(editor)
    cursor = editor.textCursor()
    cursor.select(QTextCursor.SelectionType.Document)

    loader.insert(new, cursor)
    assert editor.isReadOnly()
    qtbot.waitUntil(lambda: not loader.loading)

    assert editor.toPlainText() == new
    assert not editor.isReadOnly()
    removals = [removed for _at, removed, _added in changes if removed]
    assert len(removals) >= 4
    assert max(removals) <= REMOVE_SLICE_CHARS + 40  # whole lines, about a removal slice each
    assert sum(removals) == len(before)
    editor.undo()
    assert editor.toPlainText() == before
    editor.redo()
    assert editor.toPlainText() == new
    editor.undo()
    editor.undo()  # the user's edit is a step of its own, not part of the paste's
    assert editor.toPlainText() == before.replace("typed ", "", 1)


def test_finished_comes_in_a_turn_of_its_own_after_the_last_slice(editor):
    loader = ProgressiveText(editor)
    turn = 0
    changed, finished = [], []
    editor.document().contentsChange.connect(lambda *_change: changed.append(turn))
    loader.finished.connect(lambda: finished.append(turn))

    loader.load("{\n" + lines(2000) + "}")
    while loader.loading and turn < 10_000:
        turn += 1
        QCoreApplication.processEvents()  # one turn of the event loop

    assert len(finished) == 1
    assert finished[0] > max(changed)  # what listeners do does not add to the last slice


def test_a_short_text_over_a_short_selection_goes_in_at_once(editor):
    editor.setPlainText('{"a": 1}')
    loader = ProgressiveText(editor)
    finished = []
    loader.finished.connect(lambda: finished.append(True))
    cursor = editor.textCursor()
    cursor.select(QTextCursor.SelectionType.Document)

    loader.insert('{\n  "b": 2\n}', cursor)

    assert editor.toPlainText() == '{\n  "b": 2\n}'
    assert finished == [True]
    assert not loader.loading
    editor.undo()
    assert editor.toPlainText() == '{"a": 1}'
